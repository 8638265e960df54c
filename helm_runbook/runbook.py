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
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def execute(
    notebook: Path, *, target: str, cell_timeout: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one notebook; returns its report entry (status, duration, steps, failure)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from helm_runbook.record import read_records

    output = EXECUTED / notebook.name
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
        _relative_papermill_paths(output)
    entry["duration_s"] = round(time.perf_counter() - start, 2)
    entry["steps"] = [r for r in read_records(output) if r["ok"]] if output.exists() else []
    return entry


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
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = _shown(Path(meta[key]).resolve())
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
            ET.SubElement(suite, "testcase", classname=entry["notebook"], name=f"{step['step']} (cell {step['cell']})",
                          time=str(step["seconds"]))  # fmt: skip
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


def stop_local_target() -> None:
    from helm_runbook.targets.local import LocalTarget

    if WORKDIR.exists():
        LocalTarget.open(WORKDIR).close()


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
                      + f"executed copy: {EXECUTED / notebook.name}\n"
                      f"resume with: make runbook RUNBOOK_ARGS=--resume", file=sys.stderr)  # fmt: skip
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
