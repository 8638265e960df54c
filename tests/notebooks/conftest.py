"""One ``make runbook`` per test session into a temporary build directory (site included):
the runbook and site tests read what it produced."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from helm_runbook import runner
from tests.notebooks.scheduling import pytest_collection_modifyitems  # noqa: F401  (the hook)


@pytest.fixture(scope="session")
def run() -> Iterator[dict[str, Any]]:
    """One ``make runbook`` into a build directory of its own inside the checkout (as
    ``make runbook`` builds into ``build/``: the runner passes paths relative to the checkout,
    so nothing of this machine's layout reaches the executed copies or the site)."""
    build = runner.BUILD / f"test-run-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    patch = pytest.MonkeyPatch()
    for name, value in {"BUILD": build, "EXECUTED": build / "runbooks", "WORKDIR": build / "local-target",
                        "REPORT": build / "runbook-report.json"}.items():  # fmt: skip
        patch.setattr(runner, name, value)
    try:
        code = runner.main([])
    finally:
        patch.undo()
    report = json.loads((build / "runbook-report.json").read_text())
    yield {"code": code, "build": build, "report": report, "site": build / "site"}
    shutil.rmtree(build, ignore_errors=True)
