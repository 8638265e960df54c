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

ROOT = Path(__file__).resolve().parents[2]
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


def execute(
    notebook: Path, *, target: str, cell_timeout: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one notebook; returns its report entry (status, duration, steps, failure)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from helm_runbook.harness.engine import register
    from helm_runbook.harness.record import read_records

    # Executed into a staging copy: only a passing run replaces the copy the site is built from;
    # a failed one is kept beside it, in failed/, for the operator to open.
    output = EXECUTED / ".running" / notebook.name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    # A workdir inside the checkout is passed relative to it: no path of this machine is
    # written into the executed copy (the site publishes it).
    workdir = WORKDIR.relative_to(ROOT).as_posix() if WORKDIR.is_relative_to(ROOT) else str(WORKDIR)
    # The run profile beside the workdir (build/profile.yaml): one per build, shared by its runbooks.
    profile = (Path(workdir).parent / "profile.yaml").as_posix()
    wanted = {"target": target, "workdir": workdir, "profile": profile, **(extra or {})}
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
        failure = {"cell": exc.cell_index, "error": exc.ename, "message": exc.evalue, "fix": ""}
        recorded = [r for r in read_records(output) if r.get("failure")] if output.exists() else []
        if recorded:  # the cell index of the executed copy, which the operator opens
            failure = {"cell": recorded[-1]["cell"], **recorded[-1]["failure"]}
        entry["failure"] = failure
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


def stop_local_target(workdir: Path | None = None) -> int:
    """Stop the local target's pod and relay (``helm-runbook stop``, ``make clean``); returns
    the pod's pid, or 0 when none was running."""
    from helm_runbook.targets.local import LocalTarget

    workdir = WORKDIR if workdir is None else workdir
    if not (workdir / "state.json").exists():
        return 0
    target = LocalTarget.open(workdir)
    pid = target.pod.process_pid if target.pod is not None else 0
    target.close()
    return pid


#: How each entry point is invoked, for the resume hint.
MAKE_RUNBOOK = "make runbook"
CLI_RUN = "helm-runbook run"


@dataclass(frozen=True)
class RunRequest:
    """What to run, as ``helm-runbook run`` and ``make runbook`` both accept it."""

    notebooks: tuple[str, ...] = ()  # number or name prefixes; empty: every runbook
    target: str = "local"
    parameters: tuple[tuple[str, str], ...] = ()  # -p NAME VALUE, as given
    cell_timeout: int = 300
    resume: bool = False
    docs: bool = True

    def arguments(self) -> list[str]:
        """The request as command-line arguments (the resume hint repeats every one)."""
        args = [*self.notebooks]
        if self.target != "local":
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
    target: str
    cell_timeout: int
    whole: bool
    fresh: bool
    docs: bool


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner's arguments, the same for ``helm-runbook run`` and ``make runbook``."""
    parser.add_argument(
        "notebooks", nargs="*", help="runbooks to run, by number or name prefix (default: all)"
    )
    parser.add_argument("--target", default="local", help='"local" or a kube context name')
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a notebook parameter (never a secret: papermill copies parameters into the output)")  # fmt: skip
    parser.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell")
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
    return RunRequest(tuple(opts.notebooks), opts.target, tuple((n, v) for n, v in opts.parameter),
                      opts.cell_timeout, opts.resume, not opts.no_docs)  # fmt: skip


def _previous_entries() -> dict[str, dict[str, Any]]:
    if not REPORT.exists():
        return {}
    return {e["notebook"]: e for e in json.loads(REPORT.read_text()).get("notebooks", [])}


def plan_run(request: RunRequest) -> RunPlan:
    """The plan for ``request``; InputError, before anything runs, for a selection that matches
    no runbook or a parameter that does not convert."""
    every = notebooks()
    chosen = [
        nb
        for nb in every
        if not request.notebooks or any(nb.stem.startswith(n) for n in request.notebooks)
    ]
    if not chosen:
        raise InputError(f"no runbook matches {' '.join(request.notebooks)}",
                         fix=f"name them by number or name prefix, e.g. 01 or {every[0].stem if every else '04-smoke-checks'}")  # fmt: skip
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


def summary_line(entry: dict[str, Any], *, skipped: bool = False) -> str:
    """One line per runbook, the same from every entry point."""
    if skipped:
        return f"  skip {entry['notebook']:<24} passed in the previous run"
    mark = "ok  " if entry["status"] == "passed" else "FAIL"
    return f"  {mark} {entry['notebook']:<24} {entry['duration_s']:6.1f}s  {len(entry['steps'])} steps  {entry['executed']}"


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
                write_reports(_in_order(entries), run_metadata(plan.target))
                failure = entry["failure"]
                copy = executed_copy(planned.notebook, passed=False)
                print(f"\nrunbook {name} failed at cell {failure['cell']}: {failure['error']}\n"
                      f"executed copy: {copy}\nresume with: {resume_command(request, via=via)}", file=sys.stderr)  # fmt: skip
                raise StepFailed(f"{name} cell {failure['cell']}" + (f" ({failure['step']})" if failure.get("step") else ""),
                                 expected="every cell passes", seen=f"{failure['error']}: {failure['message']}",
                                 fix=failure["fix"] or f"see the executed notebook {copy}")  # fmt: skip
    finally:
        if plan.whole:
            stop_local_target()
    write_reports(_in_order(entries), run_metadata(plan.target))
    print(f"runbooks: {ran} ran, {len(plan.runbooks) - ran} skipped, all passed in "
          f"{time.perf_counter() - started:.1f}s; report {REPORT}", flush=True)  # fmt: skip
    if plan.docs:
        print(f"docs: built {BUILD / 'site'} in {build_docs(reference):.1f}s", flush=True)
    return [entries[p.notebook.stem] for p in plan.runbooks]


def _in_order(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    order = {nb.stem: n for n, nb in enumerate(notebooks())}
    return sorted(entries.values(), key=lambda e: order.get(e["notebook"], len(order)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helm_runbook.harness.runbook", description=__doc__
    )
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
