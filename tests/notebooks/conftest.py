"""One ``make runbook`` per test session into a temporary build directory (site included):
the runbook and site tests read what it produced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helm_runbook import runbook


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``make runbook`` into a temporary build directory (site included)."""
    build = tmp_path_factory.mktemp("build")
    patch = pytest.MonkeyPatch()
    for name, value in {"BUILD": build, "EXECUTED": build / "runbooks", "WORKDIR": build / "local-target",
                        "REPORT": build / "runbook-report.json"}.items():  # fmt: skip
        patch.setattr(runbook, name, value)
    try:
        code = runbook.main([])
    finally:
        patch.undo()
    report = json.loads((build / "runbook-report.json").read_text())
    return {"code": code, "build": build, "report": report, "site": build / "site"}
