"""Where the tests that read the session's runbook run go under pytest-xdist (a module of its
own, importing only pytest, so tests/notebooks/test_scheduling.py can run the hook in a small suite)."""

from __future__ import annotations

import pytest

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
