"""The troubleshooting lab's readiness row on its own: the symptom is the readiness probe failing
on a pod that runs, never a slow start taken for it. The whole table runs in runbook 06."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_runbook.errors import StepFailed
from helm_runbook.steps.troubleshoot import TroubleshootingLab
from helm_runbook.targets.local import LocalTarget

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[TroubleshootingLab]:
    target = LocalTarget(tmp_path)
    lab = TroubleshootingLab(target)
    try:
        lab.setup()
        yield lab
    finally:
        lab.close()
        target.close()


def test_the_readiness_symptom_is_the_probe_failing_on_a_running_pod(
    lab: TroubleshootingLab,
) -> None:
    lab.inject("readiness")
    symptom = lab.symptom("readiness")
    threshold = lab.target.deployment["spec"]["template"]["spec"]["containers"][0][
        "readinessProbe"
    ]["failureThreshold"]
    assert symptom.values["seen"]["readiness probe failures in a row"] == str(threshold)
    assert "Readiness probe failed" in symptom.values["seen"]["kubectl describe pod"]
    assert "9090" in symptom.values["seen"]["kubectl describe pod"]
    lab.fix("readiness")
    assert lab.target.readiness_failures(10) == []


def test_a_healthy_pod_slow_to_start_shows_no_readiness_symptom(
    lab: TroubleshootingLab,
) -> None:
    """A healthy pod that takes 1.5 s to start serving: the row must not take its start for the
    probe failing (a fixed wait shorter than the start would)."""
    target = lab.target
    assert isinstance(target, LocalTarget)
    target.stop_pod()
    container = target.deployment["spec"]["template"]["spec"]["containers"][0]
    slow = 'sleep 1.5; exec "$0" -m helm_runbook.runtime "$@"'
    container["command"] = ["/bin/sh", "-c", slow, sys.executable]
    target.restarts += 1
    target.start_pod()
    with pytest.raises(StepFailed, match=r"symptom\.readiness"):
        lab.symptom("readiness")
    assert target.wait_ready(1) < 1  # it was serving: the symptom step waited for it
