"""``make runbook``: execute every runbook notebook with papermill against the local target, then
build the docs site from the executed copies.

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
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from helm_runbook.errors import InputError
from helm_runbook.lab import KERNEL_NAME, UNATTENDED_ENV, ensure_kernel

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
EXECUTED = BUILD / "runbooks"
WORKDIR = BUILD / "local-target"
REPORT = BUILD / "runbook-report.json"


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

    from helm_runbook.record import read_records

    # Executed into a staging copy: only a passing run replaces the copy the site is built from;
    # a failed one is kept beside it, in failed/, for the operator to open.
    output = EXECUTED / ".running" / notebook.name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    # A workdir inside the checkout is passed relative to it: no path of this machine is
    # written into the executed copy (the site publishes it).
    workdir = WORKDIR.relative_to(ROOT).as_posix() if WORKDIR.is_relative_to(ROOT) else str(WORKDIR)
    wanted = {"target": target, "workdir": workdir, **(extra or {})}
    parameters = {k: v for k, v in wanted.items() if k in declared_parameters(notebook)}
    start = time.perf_counter()
    entry: dict[str, Any] = {"notebook": notebook.stem, "status": "passed", "failure": None}
    ensure_kernel()
    previous = os.environ.get(UNATTENDED_ENV)
    os.environ[UNATTENDED_ENV] = "1"  # the kernel inherits it: no live progress bars
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=parameters, cwd=str(NOTEBOOKS), kernel_name=KERNEL_NAME,
            execution_timeout=cell_timeout, progress_bar=False, log_output=False,
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
    from helm_runbook.docsite import chart_versions
    from helm_runbook.runtime import KERNEL_VERSION

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


def build_docs() -> float:
    """Copy the docs sources and the executed runbooks (each with its banner) into build/docs,
    generate the reference and results pages, then ``mkdocs build --strict``."""
    from helm_runbook.docsite import add_banner, write_generated_pages

    start = time.perf_counter()
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {"run": {}, "notebooks": []}
    entries = {e["notebook"]: e for e in report["notebooks"]}
    site_src = BUILD / "docs"
    shutil.rmtree(site_src, ignore_errors=True)
    shutil.copytree(ROOT / "docs", site_src)
    (site_src / "runbooks").mkdir(exist_ok=True)
    # The committed notebooks, clean, as static downloads (mkdocs.yml tells mkdocs-jupyter to
    # leave downloads/ alone); each runbook page links to its own from the banner.
    (site_src / "downloads").mkdir(exist_ok=True)
    directory_urls = yaml.safe_load((ROOT / "mkdocs.yml").read_text()).get(
        "use_directory_urls", True
    )
    up = "../../" if directory_urls else "../"
    for executed in sorted(EXECUTED.glob("*.ipynb")):
        copy = site_src / "runbooks" / executed.name
        shutil.copy(executed, copy)
        clean = NOTEBOOKS / executed.name
        download = ""
        if clean.exists():
            shutil.copy(clean, site_src / "downloads" / executed.name)
            download = f"{up}downloads/{executed.name}"
        if executed.stem in entries:
            add_banner(copy, entries[executed.stem], report.get("run", {}), download)
    write_generated_pages(site_src, report)
    # mkdocs.yml names build/docs and build/site; a build elsewhere (tests) gets its own copy.
    config = BUILD / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace("docs_dir: build/docs", f"docs_dir: {site_src}")
                      .replace("site_dir: build/site", f"site_dir: {BUILD / 'site'}"))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)],
        cwd=BUILD, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit("docs.build failed: mkdocs build --strict reported the problems above")
    return time.perf_counter() - start


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


def resume_command(argv: list[str] | None) -> str:
    """The command that starts again from the failed runbook with every original argument
    (a run against a kube context resumes against that context, not the local target)."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.insert(0, "--resume")
    return f"make runbook RUNBOOK_ARGS={shlex.quote(shlex.join(args))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helm_runbook.runbook", description=__doc__)
    parser.add_argument(
        "--resume", action="store_true", help="start from the first notebook that did not pass"
    )
    parser.add_argument("--target", default="local", help='"local" or a kube context name')
    parser.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--no-docs", action="store_true", help="skip the docs site")
    opts = parser.parse_args(argv)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    previous: dict[str, dict[str, Any]] = {}
    if opts.resume and REPORT.exists():
        previous = {e["notebook"]: e for e in json.loads(REPORT.read_text())["notebooks"]}
    else:
        stop_local_target()
        shutil.rmtree(WORKDIR, ignore_errors=True)
    entries: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for notebook in notebooks():
            earlier = previous.get(notebook.stem)
            if (
                earlier
                and earlier["status"] == "passed"
                and (EXECUTED / notebook.name).exists()
                and all(e["status"] == "passed" for e in entries)
            ):
                entries.append(earlier)
                print(f"  skip {notebook.stem:<24} passed in the previous run", flush=True)
                continue
            entry = execute(notebook, target=opts.target, cell_timeout=opts.cell_timeout)
            entries.append(entry)
            mark = "ok  " if entry["status"] == "passed" else "FAIL"
            print(
                f"  {mark} {notebook.stem:<24} {entry['duration_s']:6.1f}s  {len(entry['steps'])} steps",
                flush=True,
            )
            if entry["failure"]:
                failure = entry["failure"]
                print(f"\nrunbook {notebook.stem} failed at cell {failure['cell']}: {failure['error']}\n"
                      f"{failure['message']}\n" + (f"fix: {failure['fix']}\n" if failure["fix"] else "")
                      + f"executed copy: {executed_copy(notebook, passed=False)}\n"
                      f"resume with: {resume_command(argv)}", file=sys.stderr)  # fmt: skip
                write_reports(entries, run_metadata(opts.target))
                return 1
    finally:
        stop_local_target()
    write_reports(entries, run_metadata(opts.target))
    print(
        f"runbooks: {len(entries)} passed in {time.perf_counter() - started:.1f}s; report {REPORT}",
        flush=True,
    )
    if not opts.no_docs:
        print(f"docs: built {BUILD / 'site'} in {build_docs():.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
