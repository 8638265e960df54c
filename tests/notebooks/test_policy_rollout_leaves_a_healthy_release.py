"""Runbook 05 leaves the release healthy: after its tampered-update demo it publishes the last
good signed policy again, so a pod restarted afterwards (which reads only the mounted files at
start) comes back ready and passes the smoke checks. The same pod served all of 05."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook.harness import runbook
from helm_runbook.harness.record import read_records
from helm_runbook.steps.smoke import smoke_check
from helm_runbook.targets.local import LocalTarget

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def test_a_pod_restarted_after_05_is_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runbook, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runbook, "WORKDIR", tmp_path / "local-target")
    (tmp_path / "runbooks").mkdir()
    target = None
    try:
        for name in ("02-secret-setup", "05-policy-rollout"):
            entry = runbook.execute(
                runbook.NOTEBOOKS / f"{name}.ipynb", target="local", cell_timeout=120
            )
            assert entry["status"] == "passed", (name, entry["failure"])
        pods = [r["values"] for r in read_records(tmp_path / "runbooks" / "05-policy-rollout.ipynb")
                if r["step"] == "pod"]  # fmt: skip
        assert pods[0]["pod"] == pods[-1]["pod"]
        target = LocalTarget.open(tmp_path / "local-target")
        target.restart_pod()
        target.wait_ready(30)
        report = smoke_check(target, auth_secret="helm-auth")
        assert report.ok and report.values["evaluate_verdict"] == "DENY"
    finally:
        (target or LocalTarget.open(tmp_path / "local-target")).close()
