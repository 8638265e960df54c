"""One ``make runbook`` per test session into a temporary build directory (site included):
the runbook and site tests read what it produced."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from helm_runbook.harness import runbook

RUN_GROUP = "runbook-run"  # the pytest-xdist group of the tests that read the session's run
# seconds for the first reader, whose setup is the whole run (the runner bounds each cell)
RUN_TIMEOUT = 600


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that read the run go first and, under ``pytest -n --dist loadgroup``, to one
    worker together: the run executes once, its long pole starting while the other workers take
    the rest of the suite."""
    readers = [item for item in items if "run" in getattr(item, "fixturenames", ())]
    grouped = bool(config.getoption("loadgroup", False))  # set by pytest-xdist in its workers
    for item in readers:
        item.add_marker(pytest.mark.timeout(RUN_TIMEOUT))
        if grouped:  # the "@group" id suffix loadgroup schedules by; pytest-xdist 3.8 sets it
            # through Item._nodeid, which pytest 9 no longer reads (each reader ran the run)
            assert item.parent is not None
            item._id = item.parent.id.child(f"{item.name}@{RUN_GROUP}")
    chosen = {id(item) for item in readers}
    items[:] = readers + [item for item in items if id(item) not in chosen]


@pytest.fixture(scope="session")
def run() -> Iterator[dict[str, Any]]:
    """One ``make runbook`` into a build directory of its own inside the checkout (as
    ``make runbook`` builds into ``build/``: the runner passes paths relative to the checkout,
    so nothing of this machine's layout reaches the executed copies or the site)."""
    build = runbook.BUILD / f"test-run-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    patch = pytest.MonkeyPatch()
    for name, value in {"BUILD": build, "EXECUTED": build / "runbooks", "WORKDIR": build / "local-target",
                        "REPORT": build / "runbook-report.json"}.items():  # fmt: skip
        patch.setattr(runbook, name, value)
    try:
        code = runbook.main([])
    finally:
        patch.undo()
    report = json.loads((build / "runbook-report.json").read_text())
    yield {"code": code, "build": build, "report": report, "site": build / "site"}
    shutil.rmtree(build, ignore_errors=True)
