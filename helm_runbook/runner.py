"""The runner behind both ``make runbook`` and ``helm-runbook run`` (one loop, ``run``): execute
runbook notebooks with papermill against a target and, when every runbook ran, build the docs
site from the executed copies.

Each notebook runs in its own kernel (the project's venv) with an explicit ``--cwd`` and a
per-cell timeout into ``build/runbooks/``. A failed cell stops the run and prints the notebook,
the cell and the step's ``fix`` line. The run ends with a machine-readable report of every
recorded step (``build/runbook-report.json`` and JUnit ``build/runbook-report.xml``).
``--resume`` starts again from the first notebook that did not pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from helm_runbook.errors import InputError, RunbookError, StepFailed, report_error
from helm_runbook.harness.lab import KERNEL_NAME, ensure_kernel
from helm_runbook.harness.results import UNATTENDED_ENV
from helm_runbook.imports import skip_iri_grammars

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
EXECUTED = BUILD / "runbooks"
WORKDIR = BUILD / "local-target"
REPORT = BUILD / "runbook-report.json"

skip_iri_grammars()  # papermill imports nbformat, nbformat jsonschema (helm_runbook/imports.py)


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def declared_parameters(notebook: Path) -> set[str]:
    return set(_inspect(notebook))


def _inspect(notebook: Path) -> dict[str, dict[str, Any]]:
    import papermill

    return dict(papermill.inspect_notebook(str(notebook)))


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _convert(name: str, type_name: str, value: str) -> Any:
    """``value`` as the parameter's declared type (papermill infers it from ``name: type = ...``)."""
    try:
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
    except ValueError:
        raise InputError(f"parameter {name} is declared {type_name}; {value!r} is not one",
                         fix=f"give {name} a whole number{'' if type_name == 'int' else ' or decimal'}, "
                         f"e.g. -p {name} 0") from None  # fmt: skip
    if type_name == "bool":
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise InputError(f"parameter {name} is declared bool; {value!r} is not one",
                         fix=f"give {name} true or false, e.g. -p {name} true")  # fmt: skip
    return value


def typed_parameters(notebooks: list[Path], given: dict[str, str]) -> dict[Path, dict[str, Any]]:
    """Parameters given as text (``helm-runbook run -p NAME VALUE``) converted, per notebook, to
    the type each declares: ``-p upstream_port 0`` is the int 0 ("pick one"), not the text "0".

    InputError, before anything runs, for a value that does not convert or a name that no
    chosen runbook declares."""
    declared = {notebook: _inspect(notebook) for notebook in notebooks}
    known = {name for params in declared.values() for name in params}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InputError(f"no chosen runbook has a parameter {', '.join(unknown)}",
                         fix=f"use one of {', '.join(sorted(known))} (declared in the parameters cell of each notebook)")  # fmt: skip
    return {
        notebook: {
            name: _convert(name, str(params[name].get("inferred_type_name", "")), value)
            for name, value in given.items()
            if name in params
        }
        for notebook, params in declared.items()
    }


def _workdir_parameter() -> str:
    """The workdir as the notebooks take it: relative to the checkout when inside it, so no path
    of this machine is written into the executed copy (the site publishes it)."""
    return WORKDIR.relative_to(ROOT).as_posix() if WORKDIR.is_relative_to(ROOT) else str(WORKDIR)


def profile_path() -> Path:
    """The run profile the runner's notebooks share: beside the workdir (build/profile.yaml),
    one per build."""
    return WORKDIR.parent / "profile.yaml"


def execute(
    notebook: Path, *, target: str = "", cell_timeout: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one notebook; returns its report entry (status, duration, steps, failure).

    ``target`` is passed only when given: otherwise the notebook takes the run profile's, as it
    does under papermill or in JupyterLab (explicit parameter > profile > default)."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from helm_runbook.harness.engine import register
    from helm_runbook.harness.record import read_records

    # Executed into a staging copy: only a passing run replaces the copy the site is built from;
    # a failed one is kept beside it, in failed/, for the operator to open.
    output = EXECUTED / ".running" / notebook.name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    workdir = _workdir_parameter()
    profile = (Path(workdir).parent / "profile.yaml").as_posix()
    wanted = {**({"target": target} if target else {}), "workdir": workdir, "profile": profile,
              **(extra or {})}  # fmt: skip
    parameters = {k: v for k, v in wanted.items() if k in declared_parameters(notebook)}
    start = time.perf_counter()
    entry: dict[str, Any] = {"notebook": notebook.stem, "status": "passed", "failure": None}
    ensure_kernel()
    previous = os.environ.get(UNATTENDED_ENV)
    os.environ[UNATTENDED_ENV] = "1"  # the kernel inherits it: no live progress bars
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=parameters, cwd=str(NOTEBOOKS), kernel_name=KERNEL_NAME,
            execution_timeout=cell_timeout, progress_bar=False, log_output=False, engine_name=register(),
        )  # fmt: skip
    except PapermillExecutionError as exc:
        entry["status"] = "failed"
        # A RunbookError records itself as data in the failed cell (errors._render_traceback_);
        # anything else is a bug in the notebook or the library, known only by its text.
        failure = {"cell": exc.cell_index, "error": exc.ename, "message": exc.evalue, "fix": "",
                   "traceback": _plain("\n".join(exc.traceback or []))}  # fmt: skip
        recorded = [r for r in read_records(output) if r.get("failure")] if output.exists() else []
        if recorded:  # the cell index of the executed copy, which the operator opens
            failure = {"cell": recorded[-1]["cell"], **recorded[-1]["failure"]}
        entry["failure"] = failure
    except (CellTimeoutError, DeadKernelError) as exc:  # the kernel, not a step, gave up
        entry["status"] = "failed"
        timed_out = isinstance(exc, CellTimeoutError)
        entry["failure"] = {
            "cell": _last_started_cell(output), "error": type(exc).__name__,
            "message": f"a cell ran longer than --cell-timeout {cell_timeout}s" if timed_out
            else "the notebook's kernel died (killed, or out of memory)",
            "fix": f"give it more time (--cell-timeout {cell_timeout * 2}) if the step was progressing; "
            "else see what it waited for in the executed copy" if timed_out
            else "check the machine's memory (dmesg shows the OOM killer) and run it again",
        }  # fmt: skip
    finally:
        if previous is None:
            os.environ.pop(UNATTENDED_ENV, None)
        else:
            os.environ[UNATTENDED_ENV] = previous
    entry["duration_s"] = round(time.perf_counter() - start, 2)
    entry["steps"] = [r for r in read_records(output) if r["ok"]] if output.exists() else []
    final = executed_copy(notebook, passed=entry["status"] == "passed")
    if output.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(output, final)
        _relative_papermill_paths(final)
    with contextlib.suppress(OSError):  # empty unless another run is executing
        output.parent.rmdir()
    if entry["status"] == "passed":
        executed_copy(notebook, passed=False).unlink(missing_ok=True)
    entry["executed"] = final.relative_to(EXECUTED).as_posix()  # within build/runbooks
    return entry


def _last_started_cell(output: Path) -> int:
    """The index of the last cell that started executing in a staged copy (-1 if none)."""
    with contextlib.suppress(OSError, ValueError):
        cells = json.loads(output.read_text()).get("cells", [])
        started = [
            n
            for n, c in enumerate(cells)
            if c.get("metadata", {}).get("papermill", {}).get("start_time")
        ]
        return started[-1] if started else -1
    return -1


def _plain(text: str) -> str:
    """A kernel's traceback without its terminal colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def executed_copy(notebook: Path, *, passed: bool) -> Path:
    """Where the executed copy of ``notebook`` lives: EXECUTED (the site's source) when it
    passed, EXECUTED/failed otherwise."""
    return EXECUTED / notebook.name if passed else EXECUTED / "failed" / notebook.name


def _shown(path: Path) -> str:
    """A path as the published copy shows it: relative to the checkout when inside it."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _relative_papermill_paths(output: Path) -> None:
    """papermill records its input and output paths in the executed copy; the site publishes
    that copy, so they are made relative (no path of the build machine on a page)."""
    if not output.exists():
        return
    doc = json.loads(output.read_text())
    meta = doc.get("metadata", {}).get("papermill", {})
    if meta.get("input_path"):
        meta["input_path"] = _shown(Path(meta["input_path"]).resolve())
    if meta.get("output_path"):
        meta["output_path"] = _shown(output.resolve())  # where it ended up, not the staging copy
    output.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def run_metadata(target: str) -> dict[str, str]:
    """What the banner and results page say a run was executed against."""
    from helm_runbook.runtime import KERNEL_VERSION
    from helm_runbook.site.results import chart_versions

    return {
        "target": target,
        "runtime_version": f"helm-ai-kernel {KERNEL_VERSION} (bundled reference runtime)",
        "chart_version": chart_versions()["chart"],
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_reports(entries: list[dict[str, Any]], run: dict[str, str]) -> None:
    REPORT.write_text(json.dumps({"run": run, "notebooks": entries}, indent=2))
    suites = ET.Element("testsuites", name="helm-runbook")
    for entry in entries:
        suite = ET.SubElement(suites, "testsuite", name=entry["notebook"], tests=str(len(entry["steps"]) or 1),
                              failures=str(int(entry["status"] == "failed")), time=str(entry["duration_s"]))  # fmt: skip
        for step in entry["steps"]:
            case = ET.SubElement(suite, "testcase", classname=entry["notebook"], name=f"{step['step']} (cell {step['cell']})",
                                 time=str(step["seconds"]))  # fmt: skip
            # a step that needs the stand-in control plane, run against the operator's
            if skipped := (step.get("values") or {}).get("skipped"):
                ET.SubElement(case, "skipped", message=str(skipped))
        if entry["failure"]:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=entry["notebook"],
                name=f"cell {entry['failure']['cell']}",
            )
            ET.SubElement(case, "failure", message=entry["failure"]["error"]).text = entry[
                "failure"
            ]["message"]
    ET.ElementTree(suites).write(
        BUILD / "runbook-report.xml", encoding="unicode", xml_declaration=True
    )


def build_docs(reference: Future[dict[str, str]] | None = None) -> float:
    """The docs site from this run's executed copies and report (``site.build``), with the
    reference pages ``reference_ahead`` computed if given; seconds taken."""
    from helm_runbook.site.build import build_site

    pages = reference.result() if reference is not None else None
    return build_site(BUILD, executed=EXECUTED, report=REPORT, notebooks=NOTEBOOKS, reference=pages)


def reference_ahead() -> Future[dict[str, str]]:
    """The site's reference pages computed in a thread (``site.pages.reference_pages``, about
    4 s of chart renders that depend on no run): started with the last runbook, whose kernel
    mostly waits on its pod and Prometheus, so the site build after it does not wait for them."""
    from helm_runbook.site.pages import reference_pages

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-pages")
    try:
        return pool.submit(reference_pages)
    finally:
        pool.shutdown(wait=False)


def stop_local_target(workdir: Path | None = None, *, orphans: bool = False) -> list[str]:
    """Stop the local target's pod, network relay, nginx and Prometheus (``helm-runbook stop``,
    ``make clean``): through its state in ``workdir`` (default: build/local-target) when there,
    then every process recorded for that workdir (``targets/started.py``), which finds them even
    after ``rm -rf build``. ``orphans`` also stops this checkout's processes of other workdirs
    in the checkout or deleted. Returns what was stopped, one description each."""
    from helm_runbook.targets import started
    from helm_runbook.targets.local import LocalTarget

    workdir = WORKDIR if workdir is None else workdir
    stopped: list[str] = []
    if (workdir / "state.json").exists():
        target = LocalTarget.open(workdir)
        if target.pod is not None:
            stopped += [f"pod (pid {target.pod.process_pid}) of {_shown(workdir)}"]
            if target.pod.relay_pid:
                stopped += [f"network relay (pid {target.pod.relay_pid}) of {_shown(workdir)}"]
        target.close()
    leftovers = {
        e.file: e for e in started.recorded(workdir) + (started.orphans() if orphans else [])
    }
    for entry in started.stop(list(leftovers.values())):
        stopped.append(f"{entry.kind} (pid {entry.pid}) of {_shown(Path(entry.workdir))}"
                       + ("" if Path(entry.workdir).exists() else ", its workdir deleted"))  # fmt: skip
    return stopped


#: How each entry point is invoked, for the resume hint.
MAKE_RUNBOOK = "make runbook"
CLI_RUN = "helm-runbook run"


@dataclass(frozen=True)
class RunRequest:
    """What to run, as ``helm-runbook run`` and ``make runbook`` both accept it."""

    notebooks: tuple[str, ...] = ()  # number or name prefixes; empty: every runbook
    target: str = ""  # empty: the run profile's target (else local), as each notebook resolves it
    parameters: tuple[tuple[str, str], ...] = ()  # -p NAME VALUE, as given
    cell_timeout: int = 300
    resume: bool = False
    docs: bool = True

    def arguments(self) -> list[str]:
        """The request as command-line arguments (the resume hint repeats every one)."""
        args = [*self.notebooks]
        if self.target:
            args += ["--target", self.target]
        for name, value in self.parameters:
            args += ["-p", name, value]
        if self.cell_timeout != 300:
            args += ["--cell-timeout", str(self.cell_timeout)]
        return args + ([] if self.docs else ["--no-docs"])


@dataclass(frozen=True)
class PlannedRunbook:
    notebook: Path
    parameters: dict[str, Any]  # converted to the types the notebook declares
    skip: bool = False  # passed in the previous run and --resume was given


@dataclass(frozen=True)
class RunPlan:
    """Which runbooks run, with which parameters, and what happens around them.

    A run of every runbook owns the local target: without ``--resume`` it starts from an empty
    workdir, and it stops the pod at the end; it builds the site unless ``--no-docs``. A run of
    chosen runbooks works on the state earlier runbooks left and updates their report entries."""

    runbooks: tuple[PlannedRunbook, ...]
    target: str  # as given ("" : each notebook takes the profile's)
    cell_timeout: int
    whole: bool
    fresh: bool
    docs: bool


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0 (seconds, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def target_name(text: str) -> str:
    """An argparse type: ``local``, ``CONTEXT`` or ``CONTEXT/NAMESPACE``, checked as the run
    profile checks its target (before anything runs)."""
    from helm_runbook.steps.profile import check_target

    try:
        check_target(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner's arguments, the same for ``helm-runbook run`` and ``make runbook``."""
    parser.add_argument(
        "notebooks",
        nargs="*",
        help="runbooks to run, by number (4 or 04) or name prefix (default: all)",
    )
    parser.add_argument("--target", default=None, type=target_name,
                        help='"local" or a kube context (CONTEXT or CONTEXT/NAMESPACE); default: the '
                        "run profile's target (build/profile.yaml), else local")  # fmt: skip
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a notebook parameter (never a secret: papermill copies parameters into the output)")  # fmt: skip
    parser.add_argument(
        "--cell-timeout", type=positive_int, default=300, help="seconds per cell (above 0)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="start from the first chosen runbook that did not pass",
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="skip the docs site (built only when every runbook ran)",
    )


def request_from(opts: argparse.Namespace) -> RunRequest:
    return RunRequest(tuple(opts.notebooks), opts.target or "", tuple((n, v) for n, v in opts.parameter),
                      opts.cell_timeout, opts.resume, not opts.no_docs)  # fmt: skip


def _previous_entries() -> dict[str, dict[str, Any]]:
    if not REPORT.exists():
        return {}
    return {e["notebook"]: e for e in json.loads(REPORT.read_text()).get("notebooks", [])}


def plan_run(request: RunRequest) -> RunPlan:
    """The plan for ``request``; InputError, before anything runs, for a selection that matches
    no runbook or a parameter that does not convert."""
    every, chosen = notebooks(), _chosen(request)
    typed = typed_parameters(chosen, dict(request.parameters))
    previous = _previous_entries() if request.resume else {}
    planned, leading = [], True
    for notebook in chosen:
        earlier = previous.get(notebook.stem)
        # Resume starts again at the first chosen runbook that did not pass; all after it run.
        passed = earlier is not None and earlier["status"] == "passed"
        leading = leading and passed and executed_copy(notebook, passed=True).exists()
        planned.append(PlannedRunbook(notebook, typed[notebook], skip=leading))
    whole = chosen == every
    return RunPlan(tuple(planned), request.target, request.cell_timeout, whole=whole,
                   fresh=whole and not request.resume, docs=whole and request.docs)  # fmt: skip


def _chosen(request: RunRequest) -> list[Path]:
    """The runbooks ``request`` names, in order; InputError with "did you mean" for a name that
    matches none."""
    every = notebooks()
    chosen: list[Path] = []
    for wanted in request.notebooks:
        matched = [nb for nb in every if matches(nb.stem, wanted)]
        if not matched:
            raise InputError(f"no runbook matches {wanted}", fix=_selection_fix(wanted, every))
        chosen += [nb for nb in matched if nb not in chosen]
    return sorted(chosen) if request.notebooks else every


def _takes_target(notebook: Path) -> bool:
    """Whether the notebook's parameters cell declares ``target`` (read as JSON: papermill's
    inspection costs seconds of imports, which a check that must fail fast cannot wait for)."""
    for cell in json.loads(notebook.read_text()).get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            text = source if isinstance(source, str) else "".join(source)
            return any(re.match(r"target\s*:", line) for line in text.splitlines())
    return False


def matches(stem: str, wanted: str) -> bool:
    """``04``, ``4``, ``04-smoke``, ``smoke`` and ``04-smoke-checks`` all name 04-smoke-checks."""
    number, _, rest = wanted.partition("-")
    if number.isascii() and number.isdigit() and len(number) <= 2:
        wanted = number.zfill(2) + (f"-{rest}" if rest else "")
    return stem.startswith(wanted) or stem.partition("-")[2].startswith(wanted)


def _selection_fix(wanted: str, every: list[Path]) -> str:
    import difflib

    stems = [nb.stem for nb in every]
    # compared with each whole name and with its words: "smoek" is close to "smoke"
    by_word = {w: stem for stem in stems for w in [stem, *stem.split("-")[1:]]}
    words = difflib.get_close_matches(wanted.lower(), list(by_word), n=1, cutoff=0.6)
    close = [by_word[w] for w in words]
    named = ", ".join(f"{s[:2]} ({s})" for s in stems)
    return (
        f"did you mean {close[0][:2]} ({close[0]})? " if close else ""
    ) + f"the runbooks are {named}"


def summary_line(entry: dict[str, Any], *, skipped: bool = False) -> str:
    """One line per runbook, the same from every entry point."""
    if skipped:
        return f"  skip {entry['notebook']:<24} passed in the previous run"
    mark = "ok  " if entry["status"] == "passed" else "FAIL"
    return f"  {mark} {entry['notebook']:<24} {entry['duration_s']:6.1f}s  {len(entry['steps'])} steps  {entry['executed']}"


def runbooks_command(request: RunRequest, chosen: list[str], *, via: str = MAKE_RUNBOOK) -> str:
    """The command that runs ``chosen`` runbooks against the request's target."""
    import shlex

    args = [*chosen, *(["--target", request.target] if request.target else [])]
    if via == MAKE_RUNBOOK:
        return f"make runbook RUNBOOK_ARGS={shlex.quote(shlex.join(args))}"
    return f"{via} {shlex.join(args)}"


def resume_command(request: RunRequest, *, via: str = MAKE_RUNBOOK) -> str:
    """The command that starts again from the failed runbook with every original argument
    (a run against a kube context resumes against that context, not the local target)."""
    import shlex

    args = ["--resume", *request.arguments()]
    if via == MAKE_RUNBOOK:
        return f"make runbook RUNBOOK_ARGS={shlex.quote(shlex.join(args))}"
    return f"{via} {shlex.join(args)}"


def run(request: RunRequest, *, via: str = MAKE_RUNBOOK) -> list[dict[str, Any]]:
    """Execute ``request``'s plan: the one loop behind ``helm-runbook run`` and ``make runbook``.

    Prints one summary line per runbook, writes the reports, builds the site when the plan says
    so, and returns the report entries. A failed runbook stops the run with StepFailed naming the
    notebook, the cell and the step's fix (its executed copy goes to ``failed/``)."""
    target = effective_target(request)
    if target != "local" and any(_takes_target(nb) for nb in _chosen(request)):
        reach_target(target)  # seconds, before anything else loads: exit 3 naming what to check
    plan = plan_run(request)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    entries = {} if plan.fresh else _previous_entries()
    if plan.fresh:
        stop_local_target()
        shutil.rmtree(WORKDIR, ignore_errors=True)
    started, ran = time.perf_counter(), 0
    to_run = [p for p in plan.runbooks if not p.skip]
    reference: Future[dict[str, str]] | None = None
    try:
        for planned in plan.runbooks:
            name = planned.notebook.stem
            if planned.skip:
                print(summary_line(entries[name], skipped=True), flush=True)
                continue
            if plan.docs and planned is to_run[-1]:
                reference = reference_ahead()
            entry = execute(
                planned.notebook,
                target=plan.target,
                cell_timeout=plan.cell_timeout,
                extra=planned.parameters,
            )
            entries[name], ran = entry, ran + 1
            print(summary_line(entry), flush=True)
            if entry["failure"]:
                write_reports(_in_order(entries), run_metadata(target))
                raise failed_runbook(request, planned.notebook, entry["failure"], via=via)
    finally:
        if plan.whole and target == "local":
            stop_local_target()
    write_reports(_in_order(entries), run_metadata(target))
    print(f"runbooks: {ran} ran, {len(plan.runbooks) - ran} skipped, all passed in "
          f"{time.perf_counter() - started:.1f}s; report {REPORT}", flush=True)  # fmt: skip
    if plan.docs:
        print(f"docs: built {BUILD / 'site'} in {build_docs(reference):.1f}s", flush=True)
    return [entries[p.notebook.stem] for p in plan.runbooks]


def effective_target(request: RunRequest) -> str:
    """The target the notebooks will use: ``--target`` (or ``-p target``) when given, else the run
    profile's (what each notebook's ``use_profile`` resolves), else local."""
    given = request.target or dict(request.parameters).get("target", "")
    if given:
        return given
    from helm_runbook.steps.profile import load_profile

    path = profile_path()
    return load_profile(path).target_spec if path.exists() else "local"


def reach_target(target: str) -> None:
    """TargetUnavailable, in seconds, when the kube context ``target`` cannot be used (its
    kubeconfig, its API server, its credentials): checked once before any notebook starts."""
    from helm_runbook.targets import reach

    reach(target)


def failed_runbook(
    request: RunRequest, notebook: Path, failure: dict[str, Any], *, via: str
) -> StepFailed:
    """The failed cell as the run's error: the step's own fix and exit status. The resume hint
    is printed only when resuming can succeed: a step whose fix names another runbook to run
    first fails the same way until that one has run, so the fix names the command for it; an
    exception no step raised on purpose is a bug, shown with its traceback (exit 1)."""
    name, copy = notebook.stem, executed_copy(notebook, passed=False)
    kind = str(failure["error"])
    known = "traceback" not in failure  # a RunbookError records itself; anything else is a bug
    fix = str(failure.get("fix", ""))
    first = str(failure.get("run_first") or RunbookError("", fix=fix).run_first)
    lines = [f"\nrunbook {name} failed at cell {failure['cell']}: {kind}", f"executed copy: {copy}"]
    if not known:
        lines[1:1] = [str(failure.get("traceback") or "").rstrip()]
        kind = "bug"
        fix = f"a bug in helm-runbook (an exception no step raises on purpose): report it with the traceback above and {copy}"
    elif first and not name.startswith(first[:2]):
        fix = f"{fix}: {runbooks_command(request, [first[:2], name[:2]], via=via)}"
    else:
        lines.append(f"resume with: {resume_command(request, via=via)}")
    print("\n".join(lines), file=sys.stderr)
    step = f"{name} cell {failure['cell']}" + (
        f" ({failure['step']})" if failure.get("step") else ""
    )
    return StepFailed(step, expected="every cell passes", seen=f"{failure['error']}: {failure['message']}",
                      fix=fix, kind=kind)  # fmt: skip


def _in_order(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    order = {nb.stem: n for n, nb in enumerate(notebooks())}
    return sorted(entries.values(), key=lambda e: order.get(e["notebook"], len(order)))


def build_parser() -> argparse.ArgumentParser:
    from helm_runbook.usage import Parser

    parser = Parser(prog="python -m helm_runbook.runner", description=__doc__)
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``make runbook``: the same arguments and loop as ``helm-runbook run``, and its exit status."""
    opts = build_parser().parse_args(argv)
    try:
        run(request_from(opts), via=MAKE_RUNBOOK)
    except RunbookError as exc:
        return report_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
