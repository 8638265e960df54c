"""diagnose() on its own: what it says with nothing installed, about values, and about a client
URL. The full table (every fault injected and fixed on a running release) is runbook 06, executed
by tests/notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helm_runbook.errors import StepFailed
from helm_runbook.standins.mock_upstream import MockUpstreamServer
from helm_runbook.targets.local import LocalTarget
from helm_runbook.tools.diagnose import GUIDE, SYMPTOMS, diagnose


def test_nothing_installed_is_skipped_not_a_problem(tmp_path: Path) -> None:
    result = diagnose(LocalTarget(tmp_path))
    assert result.problems == []
    assert [f.check for f in result.findings] == list(SYMPTOMS)
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


def _applied(tmp_path: Path, values: dict[str, object], edit: object = None) -> LocalTarget:
    """A local target holding a rendered release (no pod), optionally with one object edited."""
    from helm_runbook.chart import CHART_DIR
    from helm_runbook.chart.sdk import render

    release = render(CHART_DIR, values, release="helm-ai-kernel")
    if callable(edit):
        for _, obj in release.objects:
            edit(obj)
    target = LocalTarget(tmp_path)
    target.apply(release)
    return target


METRICS = {"helm": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}}}


def test_a_servicemonitor_port_the_service_lacks_is_recognised(tmp_path: Path) -> None:
    def rename(obj: dict[str, Any]) -> None:
        if obj["kind"] == "ServiceMonitor":
            obj["spec"]["endpoints"][0]["port"] = "prometheus"

    result = diagnose(_applied(tmp_path, METRICS, rename))
    assert "metrics-scrape" in result.problems
    assert "port named 'prometheus'" in result.finding("metrics-scrape").seen
    assert result.finding("metrics-scrape").fix == SYMPTOMS["metrics-scrape"].fix
    assert (
        diagnose(_applied(tmp_path / "ok", METRICS)).finding("metrics-scrape").status == "skipped"
    )  # no pod


def test_a_missing_or_invalid_ingress_tls_secret_is_recognised(tmp_path: Path) -> None:
    from helm_runbook.steps.observability import self_signed

    values = {
        "ingress": {"enabled": True, "tls": [{"secretName": "edge-tls", "hosts": ["helm.local"]}]}
    }
    target = _applied(tmp_path, values)
    result = diagnose(target)
    assert "ingress-tls" in result.problems
    assert "no Secret 'edge-tls'" in result.finding("ingress-tls").seen
    crt, key = self_signed(["other.example"])
    target.secrets["edge-tls"] = {"tls.crt": crt, "tls.key": key}
    assert "it names ['other.example']" in diagnose(target).finding("ingress-tls").seen
    crt, key = self_signed(["helm.local"])
    target.secrets["edge-tls"] = {"tls.crt": crt, "tls.key": key}
    assert diagnose(target).finding("ingress-tls").status == "ok"


def test_a_proxy_on_the_charts_placeholder_upstream_is_named(tmp_path: Path) -> None:
    """Production renders with the placeholder upstream (as upstream's chart does): diagnose()
    says the proxy points at no real upstream; a real one, or the proxy off, is no problem."""
    placeholder = diagnose(
        _applied(
            tmp_path / "p", {"helm": {"proxy": {"upstream": "https://your-upstream.example/v1"}}}
        )
    )
    assert "proxy-upstream" in placeholder.problems
    assert "no real upstream" in placeholder.finding("proxy-upstream").seen
    assert "helm.proxy.upstream" in placeholder.finding("proxy-upstream").fix
    real = diagnose(
        _applied(
            tmp_path / "r", {"helm": {"proxy": {"upstream": "https://llm.example.internal/v1"}}}
        )
    )
    assert real.finding("proxy-upstream").status == "ok"
    off = diagnose(_applied(tmp_path / "o", {"helm": {"proxy": {"enabled": False}}}))
    assert off.finding("proxy-upstream").status == "skipped"
