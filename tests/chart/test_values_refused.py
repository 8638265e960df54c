"""No value passes silently: typos at every level, upstream values this chart does not implement,
and the schema's own refusals, each named as an operator writes it (``--set a.b.c``)."""

from __future__ import annotations

import pytest

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.schema import unsupported_values
from helm_runbook.chart.sdk import install_release, lint, render, set_values
from helm_runbook.errors import ChartError, RenderError, ValuesError

# (--set expression, the dotted key refused, the key it was probably meant to be)
MISSPELLINGS = [
    ("persistance.enabled=false", "persistance", "persistence"),
    ("replicacount=2", "replicacount", "replicaCount"),
    ("helm.productoin=true", "helm.productoin", "helm.production"),
    ("image.tagg=v1", "image.tagg", "image.tag"),
    ("helm.policy.sorce.kind=crd", "helm.policy.sorce", "helm.policy.source"),
    ("helm.policy.source.kinnd=crd", "helm.policy.source.kinnd", "helm.policy.source.kind"),
    ("helm.storage.postgres.sslmode=disable", "helm.storage.postgres.sslmode", "helm.storage.postgres.sslMode"),
    ("helm.policy.source.controlplane.auth.mdoe=bearerToken", "helm.policy.source.controlplane.auth.mdoe",
     "helm.policy.source.controlplane.auth.mode"),
    ("helm.policy.agentSafety.baseline.enabeld=false", "helm.policy.agentSafety.baseline.enabeld",
     "helm.policy.agentSafety.baseline.enabled"),
    ("probes.liveness.httpGet.paht=/x", "probes.liveness.httpGet.paht", "probes.liveness.httpGet.path"),
    ("resources.limit.cpu=1", "resources.limit", "resources.limits"),
    ("ingress.hosts[0].hots=x", "ingress.hosts[0].hots", "ingress.hosts[0].host"),
]  # fmt: skip

# Every value of the upstream chart this chart does not implement (upstream values.yaml 0.8.4).
UPSTREAM_ONLY = [
    "telemetry.enabled=true", "telemetry.syntheticLifecycleEvents=true", "telemetry.endpoint=otel:4317",
    "telemetry.serviceName=helm", "openrouter.apiKeySecretRef.name=openrouter-key",
    "openrouter.apiKeySecretRef.key=OPENROUTER_API_KEY", "launchpadApps.nodeSelector.pool=apps",
    "launchpadApps.networkPolicy.enabled=true", "launchpadApps.networkPolicy.allowDNS=true",
    "launchpadApps.test.image=busybox:1.36", "launchpadApps.openclaw.enabled=true",
    "launchpadApps.hermes.enabled=true", "launchpadApps.hermes.mode=job",
    "helm.githubEffects.existingSecret=gh", "helm.githubEffects.tokenSecretKey=HELM_GITHUB_TOKEN",
    "helm.githubEffects.apiURL=https://api.github.com", "helm.emergencyStop.enabled=true",
    "helm.emergencyStop.enabled=false", "helm.emergencyStop.audience=helm",
    "helm.emergencyStop.commandPublicKeys=abc", "helm.emergencyStop.existingSecret=estop",
    "helm.emergencyStop.commandPublicKeysSecretKey=HELM_EMERGENCY_STOP_COMMAND_PUBLIC_KEYS",
    "helm.emergencyStop.commandReplayKeyring=k", "helm.emergencyStop.commandReplayKeyringSecretKey=K",
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "key", "meant"), MISSPELLINGS, ids=[m[0] for m in MISSPELLINGS]
)
def test_a_misspelled_key_is_refused_by_lint_and_template_with_a_suggestion(
    expression: str, key: str, meant: str
) -> None:
    values = set_values(expression)
    with pytest.raises(ValuesError) as refused:
        render(CHART_DIR, values)
    assert f"{key}: is not a value of this chart; did you mean {meant}?" in refused.value.message
    assert f"rename it to {meant}" in refused.value.fix
    linted = lint(CHART_DIR, values)
    assert not linted.ok
    assert any(
        f"{key}: is not a value of this chart; did you mean {meant}?" in e for e in linted.errors
    )


def test_an_unknown_key_far_from_any_lists_the_valid_ones() -> None:
    with pytest.raises(ValuesError) as refused:
        render(CHART_DIR, set_values("helm.storage.sqlite.wal=true"))
    assert (
        "helm.storage.sqlite.wal: is not a value of this chart (the keys under helm.storage.sqlite are path)"
        in (refused.value.message)
    )


@pytest.mark.parametrize("expression", UPSTREAM_ONLY)
def test_an_upstream_value_this_chart_does_not_implement_is_refused_by_name(
    expression: str,
) -> None:
    values = set_values(expression)
    key = expression.split("=")[0]
    for refuse in (lambda: render(CHART_DIR, values),
                   lambda: install_release(CHART_DIR, "helm-ai-kernel", values, namespace="ns1", dry_run="client")):  # fmt: skip
        with pytest.raises(ChartError) as refused:
            refuse()
        text = refused.value.message
        assert f"{key}: this chart does not support" in text
        assert "use the upstream chart for that feature" in text and "unset" in text


def test_hybrid_signing_is_refused_by_name() -> None:
    with pytest.raises(
        ChartError, match=r"helm.signing.algorithm=ml-dsa-65 .* not supported by this chart"
    ):
        render(CHART_DIR, set_values("helm.signing.algorithm=ml-dsa-65"))


def test_a_whole_upstream_section_names_its_leaves_bounded() -> None:
    values = set_values(*(f"launchpadApps.app{i}.enabled=true" for i in range(8)))
    with pytest.raises(ChartError) as refused:
        render(CHART_DIR, values)
    assert (
        "launchpadApps.app0.enabled, " in refused.value.message
        and "and 3 more" in refused.value.message
    )


def test_the_schema_declares_exactly_the_refused_upstream_sections() -> None:
    declared = {key for key, _ in unsupported_values(CHART_DIR)}
    assert declared == {
        "telemetry",
        "openrouter",
        "launchpadApps",
        "helm.githubEffects",
        "helm.emergencyStop",
    }
    assert {e.split("=")[0].split(".")[0] for e in UPSTREAM_ONLY} | {
        "helm.githubEffects",
        "helm.emergencyStop",
    } >= ({k for k in declared if "." not in k})


def test_the_chart_readme_lists_every_unsupported_upstream_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    for key, feature in unsupported_values(CHART_DIR):
        assert f"`{key}.*`" in readme and feature in readme


@pytest.mark.parametrize(
    ("expression", "dotted", "fix"),
    [("helm.auth.tenantID=", "helm.auth.tenantID: must not be empty", "X-Helm-Tenant-ID"),
     ("helm.auth.principalID=", "helm.auth.principalID: must not be empty", "X-Helm-Principal-ID"),
     ("helm.auth.workspaceID=", "helm.auth.workspaceID: must not be empty", "HELM_RUNTIME_WORKSPACE_ID"),
     ("runtimeInit.image=alpine:3.20", 'runtimeInit.image "alpine:3.20" must be pinned by immutable sha256 digest',
      "registry/image@sha256:")],
)  # fmt: skip
def test_guard_refusals_name_the_dotted_value_even_in_helms_own_message(
    expression: str, dotted: str, fix: str
) -> None:
    """Checked by the template's guard, not the schema: Helm's schema refusals name JSON
    pointers, while operators (and upstream's chart CI, grepping the helm CLI's stderr) look for
    the dotted value; Helm's raw message is what the CLI prints."""
    with pytest.raises(RenderError) as refused:
        render(CHART_DIR, set_values(expression))
    assert dotted in refused.value.message and fix in refused.value.message
    assert dotted in str(refused.value.helm_message)
