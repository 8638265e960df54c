"""The main job's cost (issue 18): ``make runbook`` from a fresh clone, warm, per notebook, and
the floor beside it. Prints figures; asserts nothing.

.venv/bin/python benchmarks/main_job.py [--repeat 3] [--fresh 1]

Everything runs in a clone of this checkout's HEAD under a temporary directory (its own
``.venv`` by ``make setup``, its own ``build/``), so the checkout's build and target are left
alone; uncommitted changes are not in the clone. The fresh part is ``make setup`` then ``make
runbook`` in a new clone (the installer's download cache is the machine's, as for any developer).
The warm part is ``make runbook`` again in that clone; each notebook's time is the duration the
runner records in ``build/runbook-report.json`` (kernel start to last cell). The floor is papermill
executing a notebook with one empty cell on the same ``helm-runbook`` kernel, in-process as the
runner does, so runbook/floor is what a runbook costs beyond starting a kernel.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP_TIMEOUT_S = 1800  # one make invocation; the runner bounds each cell itself

FLOOR_SCRIPT = """
import json, sys, time
from pathlib import Path
import nbformat, papermill
from helm_runbook.harness.lab import KERNEL_NAME, ensure_kernel
ensure_kernel()
work = Path(sys.argv[1])
empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
empty.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": KERNEL_NAME, "language": "python"}
source = work / "empty.ipynb"
nbformat.write(empty, source)
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    papermill.execute_notebook(str(source), str(work / "out.ipynb"), kernel_name=KERNEL_NAME,
                               cwd=str(work), progress_bar=False, log_output=False)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def timed_make(clone: Path, verb: str) -> float:
    """Seconds one ``make VERB`` takes in the clone; its output goes to a log beside it."""
    log = clone.parent / f"make-{verb}.log"
    start = time.perf_counter()
    with log.open("ab") as out:
        done = subprocess.run(["make", verb], cwd=clone, stdout=out, stderr=subprocess.STDOUT,
                              timeout=STEP_TIMEOUT_S, check=False)  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"make {verb} failed in {clone} (exit {done.returncode}):\n{tail}")
    return elapsed


def notebook_times(clone: Path) -> dict[str, float]:
    report = json.loads((clone / "build" / "runbook-report.json").read_text())
    return {entry["notebook"]: float(entry["duration_s"]) for entry in report["notebooks"]}


def fresh_clone(into: Path) -> Path:
    clone = into / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    return clone


def floor(clone: Path, work: Path, repeat: int) -> list[float]:
    work.mkdir(exist_ok=True)
    done = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", FLOOR_SCRIPT, str(work), str(repeat)],
                          capture_output=True, text=True, check=True, timeout=STEP_TIMEOUT_S)  # fmt: skip
    return [float(t) for t in json.loads(done.stdout.strip().splitlines()[-1])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm runs and floor runs (median)")
    parser.add_argument("--fresh", type=int, default=1, help="fresh-clone runs (median)")
    opts = parser.parse_args(argv)
    if opts.repeat < 1 or opts.fresh < 1:
        parser.error("--repeat and --fresh take a count of at least 1")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="main-job-") as tmp:
        scratch = Path(tmp)
        setups, fresh_runs = [], []
        clone = scratch / "clone"
        try:
            for _ in range(opts.fresh):
                clone = fresh_clone(scratch)
                setups.append(timed_make(clone, "setup"))
                fresh_runs.append(timed_make(clone, "runbook"))
            warm_runs, per_notebook = [], []
            for _ in range(opts.repeat):
                warm_runs.append(timed_make(clone, "runbook"))
                per_notebook.append(notebook_times(clone))
            floors = floor(clone, scratch / "floor", opts.repeat)
        finally:
            if (clone / ".venv" / "bin" / "helm-runbook").exists():
                subprocess.run([str(clone / ".venv" / "bin" / "helm-runbook"), "stop"], cwd=clone,
                               capture_output=True, check=False, timeout=120)  # fmt: skip
    med = statistics.median
    floor_s = med(floors)
    fresh_total = [s + r for s, r in zip(setups, fresh_runs, strict=True)]
    print(f"main job, HEAD {head}: {opts.fresh} fresh clone(s), {opts.repeat} warm run(s), medians")
    print(f"  fresh clone  make setup + make runbook  {med(fresh_total):6.1f} s"
          f"  (setup {med(setups):.1f} s, runbook {med(fresh_runs):.1f} s)")  # fmt: skip
    print(
        f"  warm         make runbook               {med(warm_runs):6.1f} s  (runbooks and the site)"
    )
    print(f"  floor        papermill, empty notebook  {floor_s:6.2f} s  (kernel helm-runbook)")
    print(f"  {'notebook':<26} {'seconds':>8} {'/floor':>7}   (each warm run: seconds)")
    names = list(per_notebook[-1])
    for name in names:
        samples = [run[name] for run in per_notebook if name in run]
        print(f"  {name:<26} {med(samples):8.1f} {med(samples) / floor_s:7.1f}   "
              + " ".join(f"{s:.1f}" for s in samples))  # fmt: skip
    notebooks_total = med([sum(run.values()) for run in per_notebook])
    print(f"  {'all notebooks':<26} {notebooks_total:8.1f} {notebooks_total / floor_s:7.1f}")
    print(
        f"command: {sys.executable} benchmarks/main_job.py --repeat {opts.repeat} --fresh {opts.fresh}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
