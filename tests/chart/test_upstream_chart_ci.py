"""Upstream's chart CI, in our words: the renders its chart smoke makes (the default, production
with inline keys, existing Secrets, the control-plane source with a signature, tenant and
principal, PostgreSQL through a Secret, the CRD source) and the literal text it greps for, and
its refusals, checked on Helm's own message (what the helm CLI prints on stderr). Values are
given as upstream gives them, through Helm's ``--set`` parser; the text is ``helm template``'s.
The deployment guide's two production skeletons render as written too."""

from __future__ import annotations

import json
import re

import pytest

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import lint, set_values, template_text
from helm_runbook.chart.values import nested
from helm_runbook.errors import ChartError

SEED = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
IMAGE = ("image.repository=ghcr.io/mindburn-labs/helm-ai-kernel", "image.tag=local",
         "image.pullPolicy=IfNotPresent")  # fmt: skip
KEYS = ("helm.production=true", f"helm.signing.key={SEED}", "helm.auth.adminAPIKey=helm-admin-smoke",
        "helm.auth.serviceAPIKey=helm-service-smoke")  # fmt: skip
IDENTITY = ("helm.auth.tenantID=tenant-smoke", "helm.auth.principalID=agent.smoke")
CONTROLPLANE = ("helm.policy.source.kind=controlplane",
                "helm.policy.source.controlplane.url=https://helm-controlplane.example.internal")  # fmt: skip
SIGNED = ("helm.policy.signature.required=true", f"helm.policy.signature.publicKey={SEED}")
NEVER = ("configmap-reload", "kind: CustomResourceDefinition", "HelmPolicyBundle", "policy-reader")


def _template(*flags: str) -> str:
    return template_text(
        CHART_DIR, set_values(*flags), release="helm-smoke", namespace="helm-smoke"
    )


def _refused(*flags: str) -> str:
    """Helm's message for a refused render: what ``helm template`` prints on stderr."""
    with pytest.raises(ChartError) as refused:
        _template(*flags)
    return str(refused.value.helm_message)


def _contains(text: str, *needles: str) -> None:
    missing = [n for n in needles if n not in text]
    assert not missing, f"rendered chart misses {missing}"


def _lacks(text: str, *needles: str) -> None:
    present = [n for n in needles if n in text]
    assert not present, f"rendered chart contains {present}"


def _init_container(text: str) -> str:
    """From the init container's name to its volumeMounts: its security context and script."""
    start = text.index("name: prepare-authority-state")
    return text[start : text.index("volumeMounts:", start)]


def test_the_default_render() -> None:
    text = _template(*IMAGE)
    _contains(text, "kind: Deployment", 'image: "ghcr.io/mindburn-labs/helm-ai-kernel:local"',
              "HELM_POLICY_SOURCE_KIND", "mountedFile", "HELM_POLICY_ON_INVALID_UPDATE",
              "HELM_POLICY_LAST_KNOWN_GOOD_MAX_AGE", "keepLastKnownGood", "HELM_POLICY_SIGNATURE_REQUIRED",
              "/etc/helm-ai-kernel/policy/serve-policy.toml", "HELM_RUNTIME_TENANT_ID",
              "HELM_RUNTIME_PRINCIPAL_ID", "HELM_RUNTIME_WORKSPACE_ID", "HELM_EMERGENCY_STOP_FENCE_ENABLED",
              'value: "default"', 'value: "system-admin"', 'value: "0"', "automountServiceAccountToken: false",
              '"runtime_actions": []', "name: prepare-authority-state", "HELM_AUTHORITY_DATA_DIR",
              "/var/run/helm-signing-key", "defaultMode: 256", "runAsNonRoot: true", "runAsUser: 65534",
              "runAsGroup: 65534", "refusing silent rotation",
              "authority data volume is not writable by the restricted runtime identity",
              'chmod 0600 "$root_key" 2>/dev/null || true',
              "durable authority root key exists but is not readable")  # fmt: skip
    _lacks(text, "checksum/config", "HELM_POLICY_TRUST_PUBLIC_KEY", "HELM_ENV", "HELM_SEMANTIC_THREAT_ESCALATION_BP",
           "HELM_GITHUB_TOKEN", "HELM_GITHUB_API_URL", "HELM_EMERGENCY_STOP_COMMAND_AUDIENCE",
           "HELM_EMERGENCY_STOP_COMMAND_PUBLIC_KEYS", "subPath: root.key", "mountPath: /data/root.key", *NEVER)  # fmt: skip


def test_the_authority_init_runs_restricted_and_tightens_an_existing_key_only_after_comparing() -> (
    None
):
    init = _init_container(_template(*IMAGE))
    _contains(init, "drop:", "ALL")
    _lacks(init, "add:", "CHOWN", "runAsNonRoot: false", "runAsUser: 0", "runAsGroup: 0")
    assert init.count('chmod 0600 "$root_key"') == 1
    assert init.index('cmp -s "$source_key" "$root_key"') < init.index(
        'chmod 0600 "$root_key" 2>/dev/null'
    )
    own = _init_container(_template("podSecurityContext.runAsUser=12345", "podSecurityContext.runAsGroup=12346",
                                    "podSecurityContext.fsGroup=12346"))  # fmt: skip
    _contains(own, "runAsNonRoot: true", "runAsUser: 12345", "runAsGroup: 12346")


def test_production_with_inline_keys_tenant_and_principal() -> None:
    flags = (
        *KEYS,
        *IDENTITY,
        "image.repository=ghcr.io/mindburn-labs/helm-ai-kernel",
        "image.pullPolicy=IfNotPresent",
    )
    assert lint(CHART_DIR, set_values(*flags)).ok
    text = _template(*flags, "image.tag=local")
    _contains(text, "kind: Deployment", "serve", "--policy", "/etc/helm-ai-kernel/policy/serve-policy.toml",
              "--data-dir", "/data", "HELM_PRODUCTION", "HELM_POLICY_SOURCE_KIND", "mountedFile",
              "HELM_POLICY_POLL_INTERVAL", "HELM_POLICY_SIGNATURE_REQUIRED", "/internal/policy/reconcile",
              "EVIDENCE_SIGNING_KEY", "HELM_ADMIN_API_KEY", "HELM_SERVICE_API_KEY", "HELM_RUNTIME_TENANT_ID",
              "HELM_RUNTIME_PRINCIPAL_ID", 'value: "tenant-smoke"', 'value: "agent.smoke"',
              "readOnlyRootFilesystem: true", "runAsNonRoot: true", "persistentVolumeClaim:", "path: /health",
              "kind: Secret", "kind: ConfigMap")  # fmt: skip
    _lacks(text, *NEVER)


def test_production_with_existing_secrets() -> None:
    text = _template("helm.production=true", "helm.signing.existingSecret=helm-signing",
                     "helm.auth.existingSecret=helm-auth", *IDENTITY)  # fmt: skip
    _contains(text, "name: EVIDENCE_SIGNING_KEY", 'name: "helm-signing"', 'name: "helm-auth"',
              'key: "HELM_ADMIN_API_KEY"', 'key: "HELM_SERVICE_API_KEY"', 'secretName: "helm-signing"')  # fmt: skip
    assert not re.search(r"kind: Secret\n", text), "no chart-made Secret holds key material"


def test_production_with_the_control_plane_source_and_a_signature() -> None:
    text = _template(*KEYS, *CONTROLPLANE, *SIGNED, *IMAGE)
    _contains(text, "HELM_POLICY_SOURCE_KIND", "controlplane", "HELM_POLICY_CONTROLPLANE_URL",
              "https://helm-controlplane.example.internal", "HELM_POLICY_SIGNATURE_REQUIRED",
              "HELM_POLICY_TRUST_PUBLIC_KEY")  # fmt: skip
    _lacks(text, "configmap-reload", "kind: CustomResourceDefinition", "policy-reader")


def test_production_on_postgres_through_a_secret() -> None:
    text = _template(*KEYS, "helm.storage.type=postgres", "helm.storage.postgres.existingSecret=helm-postgres-url",
                     "helm.storage.postgres.sslMode=verify-full")  # fmt: skip
    _contains(text, "name: DATABASE_URL", "secretKeyRef:", 'name: "helm-postgres-url"')
    _lacks(text, "postgres://", "POSTGRES_PASSWORD", "sslmode=disable")


def test_production_with_the_crd_source() -> None:
    text = _template(
        *KEYS, "helm.policy.source.kind=crd", "helm.policy.source.crd.install=true", *IMAGE
    )
    _contains(text, "kind: CustomResourceDefinition", "HelmPolicyBundle", "kind: Role", "helmpolicybundles",
              "automountServiceAccountToken: true")  # fmt: skip


def test_policy_values_reach_the_render() -> None:
    # upstream passes this one with --set-json
    actions = json.loads(
        '[{"action":"file_read","expression":"input.effect.params.path == \\"/etc/hostname\\""}]'
    )
    text = template_text(CHART_DIR, nested({"helm.policy.runtimeActions": actions}))
    assert (
        '"runtime_actions": [{"action":"file_read","expression":"input.effect.params.path == \\"/etc/hostname\\""}]'
        in text
    )
    _contains(_template("helm.guardian.semanticThreatEscalationBP=7000"), "HELM_SEMANTIC_THREAT_ESCALATION_BP",
              'value: "7000"')  # fmt: skip
    _contains(_template("helm.policy.failClosed.onInvalidUpdate=deny", "helm.policy.failClosed.lastKnownGoodMaxAge=45s"),
              'value: "deny"', 'value: "45s"')  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "named"),
    [(("helm.production=true",), "requires helm.signing.key"),
     ((*KEYS, "helm.auth.tenantID="), "helm.auth.tenantID"),
     ((*KEYS, "helm.auth.principalID="), "helm.auth.principalID"),
     ((*KEYS, "helm.storage.type=postgres", "helm.storage.postgres.host=postgres.example.internal",
       "helm.storage.postgres.password=secret"), "requires helm.storage.postgres.existingSecret"),
     ((*KEYS, "helm.storage.type=postgres", "helm.storage.postgres.existingSecret=helm-postgres-url",
       "helm.storage.postgres.sslMode=disable"), "requires helm.storage.postgres.sslMode"),
     ((*KEYS, "helm.storage.type=postgres", "helm.storage.postgres.existingSecret=helm-postgres-url",
       "postgresql.enabled=true"), "does not support the bundled postgresql subchart"),
     ((*KEYS, "helm.policy.source.kind=controlplane"), "helm.policy.source.controlplane.url"),
     ((*KEYS, *CONTROLPLANE), "helm.policy.signature.required=true"),
     (("runtimeInit.image=alpine:3.20",), "runtimeInit.image"),
     (("helm.guardian.semanticThreatEscalationBP=10001",), "semanticThreatEscalationBP"),
     (("helm.policy.failClosed.onInvalidUpdate=allow",), "onInvalidUpdate")],
    ids=["no-key", "no-tenant", "no-principal", "pg-inline", "pg-weak-tls", "pg-subchart", "cp-no-url",
         "cp-unsigned", "unpinned-init", "semantic-bp", "lkg-allow"],
)  # fmt: skip
def test_each_refusal_names_its_value_in_helms_own_message(
    flags: tuple[str, ...], named: str
) -> None:
    assert named in _refused(*flags)


@pytest.mark.parametrize(
    "flags",
    [(*KEYS, "persistence.enabled=true"),
     ("helm.production=true", "helm.signing.existingSecret=helm-signing", "helm.auth.existingSecret=helm-auth")],
    ids=["inline-keys", "existing-secrets"],
)  # fmt: skip
def test_the_guides_production_skeletons_render_as_written(flags: tuple[str, ...]) -> None:
    """With the chart's placeholder upstream, as the guide writes them; NOTES names it."""
    text = _template(*flags)
    _contains(text, "kind: Deployment", 'name: HELM_PRODUCTION\n              value: "1"',
              'value: "https://your-upstream.example/v1"')  # fmt: skip
