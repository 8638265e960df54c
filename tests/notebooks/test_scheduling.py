"""The scheduling of the tests that read the session's runbook run (tests/notebooks/scheduling.py):
the run is the suite's long pole, so under ``pytest -n --dist loadgroup`` its readers must share
one worker and start first there, while the other workers take the rest of the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = """
import os
from pathlib import Path

import pytest

from tests.notebooks.scheduling import pytest_collection_modifyitems  # the hook under test

LOG = Path(__file__).with_name("order.log")


@pytest.fixture(scope="session")
def run():
    return "the session's run"


@pytest.fixture(autouse=True)
def record(request):
    with LOG.open("a") as log:  # one short append per test: lines do not interleave
        log.write(f"{os.environ['PYTEST_XDIST_WORKER']} {request.node.name}\\n")
"""
OTHERS = "".join(f"def test_other_{n}():\n    pass\n\n\n" for n in range(8))
READERS = "".join(f"def test_reader_{n}(run):\n    assert run\n\n\n" for n in range(4))


def test_the_run_readers_share_one_worker_and_start_first_on_it(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_a_others.py").write_text(OTHERS)  # collected before the readers
    (tmp_path / "test_z_readers.py").write_text(READERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
                           "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [line.split() for line in (tmp_path / "order.log").read_text().splitlines()]
    assert len(ran) == 12
    workers = {worker for worker, name in ran if name.startswith("test_reader")}
    assert len(workers) == 1, f"the readers ran on {sorted(workers)}: the run would execute on each"
    (worker,) = workers
    on_it = [name for w, name in ran if w == worker]
    assert all(name.startswith("test_reader") for name in on_it[:4]), on_it
