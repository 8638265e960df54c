"""diagnose() on its own: what it says with nothing installed, about values, and about a client
URL. The full table (every fault injected and fixed on a running release) is runbook 06, executed
by tests/notebooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook.diagnose import GUIDE, diagnose
from helm_runbook.errors import StepFailed
from helm_runbook.mock_upstream import MockUpstreamServer
from helm_runbook.targets.local import LocalTarget


def test_nothing_installed_is_skipped_not_a_problem(tmp_path: Path) -> None:
    result = diagnose(LocalTarget(tmp_path))
    assert result.problems == []
    assert [f.check for f in result.findings] == list(GUIDE)
    assert {f.status for f in result.findings} == {"skipped"}
    assert "no problem found" in str(result) and "<table>" in result._repr_html_()


def test_production_values_without_keys_are_recognised(tmp_path: Path) -> None:
    result = diagnose(LocalTarget(tmp_path), values={"helm": {"production": True}})
    assert result.problems == ["render"]
    finding = result.finding("render")
    assert "helm.signing" in finding.seen and finding.fix == GUIDE["render"].fix
    assert diagnose(LocalTarget(tmp_path), values={}).problems == []


def test_a_client_pointed_at_the_provider_is_recognised(tmp_path: Path) -> None:
    with MockUpstreamServer() as upstream:
        result = diagnose(LocalTarget(tmp_path), client_url=upstream.url)
    assert result.problems == ["client-url"]
    assert "without X-HELM-Governed" in result.finding("client-url").seen


def test_require_names_the_symptom_it_expected(tmp_path: Path) -> None:
    result = diagnose(LocalTarget(tmp_path))
    with pytest.raises(StepFailed) as failed:
        result.require("persistence")
    assert "receipts disappear after restart" in failed.value.expected


@pytest.mark.slow
def test_a_symptom_that_does_not_appear_fails_the_step(tmp_path: Path) -> None:
    """On a healthy release the lab's symptom steps must not report what is not there."""
    from helm_runbook.steps.troubleshoot import TroubleshootingLab

    target = LocalTarget(tmp_path)
    lab = TroubleshootingLab(target)
    try:
        lab.setup()
        lab.client_url = f"{target.url()}/v1"  # the right URL: the bypass symptom is absent
        with pytest.raises(StepFailed, match=r"symptom\.client-url"):
            lab.symptom("client-url")
        with pytest.raises(StepFailed, match=r"symptom\.persistence"):
            lab.symptom("persistence")  # the PVC keeps the receipts
        with pytest.raises(ValueError, match="unknown fault"):
            lab.inject("dns")
    finally:
        lab.close()
        target.close()


@pytest.mark.slow
def test_a_stopped_pod_is_named_not_taken_for_a_readiness_problem(tmp_path: Path) -> None:
    from helm_runbook.cli import main

    local = LocalTarget(tmp_path)
    local.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    local.install({"helm": {"auth": {"existingSecret": "helm-auth"}}})
    local.wait_ready()
    assert main(["stop", "--workdir", str(tmp_path)]) == 0
    result = diagnose(LocalTarget.open(tmp_path))
    readiness = result.finding("readiness")
    assert readiness.status == "problem" and "no pod is running" in readiness.seen
    assert "runbook 03" in readiness.fix  # start it, not "inspect HELM_HEALTH_PORT"
    assert result.finding("persistence").status == "skipped"
