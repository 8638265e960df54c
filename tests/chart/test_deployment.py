"""templates/deployment.yaml (docs/upstream-contract.md#deployment)."""

from __future__ import annotations

from tests.chart.conftest import PRODUCTION, env_of, template


def _pod(release=None):  # type: ignore[no-untyped-def]
    return (release or template()).get("Deployment")["spec"]["template"]["spec"]


def test_container_args_ports_and_probes() -> None:
    container = _pod()["containers"][0]
    assert container["name"] == "helm-ai-kernel"
    assert container["image"] == "ghcr.io/mindburn-labs/helm-ai-kernel:v0.8.4"
    assert container["args"] == ["serve", "--policy", "/etc/helm-ai-kernel/policy/serve-policy.toml",
                                 "--addr", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]  # fmt: skip
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http", 8080),
        ("health", 8081),
    ]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "health"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip


def test_env_defaults() -> None:
    env = env_of(_pod()["containers"][0])
    assert env["HELM_DATA_DIR"] == "/data"
    assert env["HELM_HEALTH_PORT"] == "8081"
    assert env["HELM_PRODUCTION"] == "0"
    assert env["HELM_POLICY_SOURCE_KIND"] == "mountedFile"
    assert env["HELM_POLICY_ON_INVALID_UPDATE"] == "keepLastKnownGood"
    assert env["HELM_RUNTIME_TENANT_ID"] == "default"
    assert env["HELM_RUNTIME_PRINCIPAL_ID"] == "system-admin"
    assert env["HELM_EMERGENCY_STOP_FENCE_ENABLED"] == "0"
    assert env["EVIDENCE_SIGNING_KEY"] == {"secret": "helm-ai-kernel-signing", "key": "signing-key"}
    assert env["HELM_ENABLE_OPENAI_PROXY"] == "1"
    assert len([k for k in env if k.startswith("HELM_AGENT_SAFETY_")]) == 13
    for absent in (
        "HELM_ADMIN_API_KEY",
        "HELM_SERVICE_API_KEY",
        "HELM_POLICY_TRUST_PUBLIC_KEY",
        "DATABASE_URL",
        "HELM_ENV",
    ):
        assert absent not in env


def test_existing_auth_secret_wires_both_keys() -> None:
    env = env_of(_pod(template({"helm.auth.existingSecret": "helm-auth"}))["containers"][0])
    assert env["HELM_ADMIN_API_KEY"] == {"secret": "helm-auth", "key": "HELM_ADMIN_API_KEY"}
    assert env["HELM_SERVICE_API_KEY"] == {"secret": "helm-auth", "key": "HELM_SERVICE_API_KEY"}


def test_inline_admin_key_wires_only_that_key() -> None:
    env = env_of(_pod(template({"helm.auth.adminAPIKey": "a"}))["containers"][0])
    assert env["HELM_ADMIN_API_KEY"] == {
        "secret": "helm-ai-kernel-auth",
        "key": "HELM_ADMIN_API_KEY",
    }
    assert "HELM_SERVICE_API_KEY" not in env


def test_init_container_authority_state() -> None:
    pod = _pod()
    init = pod["initContainers"][0]
    assert init["name"] == "prepare-authority-state"
    assert "@sha256:" in init["image"]
    script = init["args"][0]
    assert "umask 077" in script
    # upstream's chart smoke greps these literal strings
    assert "refusing silent rotation" in script
    assert "authority data volume is not writable by the restricted runtime identity" in script
    assert "durable authority root key exists but is not readable" in script
    assert script.count('chmod 0600 "$root_key"') == 1
    assert 'chmod 0600 "$root_key" 2>/dev/null || true' in script
    assert script.index('cmp -s "$source_key" "$root_key"') < script.index('chmod 0600 "$root_key"')
    assert (
        init["securityContext"]["runAsUser"] == 65534
        and init["securityContext"]["readOnlyRootFilesystem"]
    )
    assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]} == {
        "data": "/data",
        "signing-key": "/var/run/helm-signing-key",
    }
    signing = next(v for v in pod["volumes"] if v["name"] == "signing-key")["secret"]
    assert signing["defaultMode"] == 256
    assert signing["items"] == [{"key": "signing-key", "path": "root.key"}]


def test_volumes_and_mounts() -> None:
    pod = _pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "helm-ai-kernel-data"
    assert volumes["policy"]["configMap"]["name"] == "helm-ai-kernel-config"
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert (
        mounts["policy"]["mountPath"] == "/etc/helm-ai-kernel/policy"
        and mounts["policy"]["readOnly"]
    )
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert pod["automountServiceAccountToken"] is False
    no_pvc = _pod(template({"persistence.enabled": False}))
    assert next(v for v in no_pvc["volumes"] if v["name"] == "data") == {
        "name": "data",
        "emptyDir": {},
    }


def test_metrics_controlplane_and_postgres_env() -> None:
    release = template({
        "helm.metrics.enabled": True,
        "helm.policy.source.kind": "controlplane",
        "helm.policy.source.controlplane.url": "https://cp.internal",
        "helm.policy.source.controlplane.auth.mode": "bearerToken",
        "helm.policy.source.controlplane.auth.existingSecret": "cp-token",
        "helm.policy.signature.required": True,
        "helm.policy.signature.existingSecret": "trust",
        "helm.storage.type": "postgres",
        "helm.storage.postgres.existingSecret": "db",
    }, PRODUCTION)  # fmt: skip
    container = _pod(release)["containers"][0]
    env = env_of(container)
    assert [p["name"] for p in container["ports"]] == ["http", "health", "metrics"]
    assert env["HELM_POLICY_CONTROLPLANE_URL"] == "https://cp.internal"
    assert env["HELM_POLICY_BEARER_TOKEN"] == {
        "secret": "cp-token",
        "key": "HELM_POLICY_BEARER_TOKEN",
    }
    assert env["HELM_POLICY_TRUST_PUBLIC_KEY"] == {
        "secret": "trust",
        "key": "HELM_POLICY_TRUST_PUBLIC_KEY",
    }
    assert env["DATABASE_URL"] == {"secret": "db", "key": "DATABASE_URL"}
    assert env["HELM_PRODUCTION"] == "1"


def test_reloader_sidecar_wakes_the_reconcile_endpoint() -> None:
    pod = _pod(template({"helm.policy.reloadHints.configReloaderSidecar.enabled": True}))
    sidecar = pod["containers"][1]
    assert sidecar["name"] == "config-reloader"
    assert "--webhook-url=http://127.0.0.1:8080/internal/policy/reconcile" in sidecar["args"]


def test_fullname_rules() -> None:
    assert (
        template(release="helm-smoke").get("Deployment")["metadata"]["name"]
        == "helm-smoke-helm-ai-kernel"
    )
    assert (
        template(release="my-helm-ai-kernel").get("Deployment")["metadata"]["name"]
        == "my-helm-ai-kernel"
    )
    assert (
        template({"fullnameOverride": "kernel"}).get("Deployment")["metadata"]["name"] == "kernel"
    )
    selector = template().get("Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "helm-ai-kernel",
        "app.kubernetes.io/instance": "helm-ai-kernel",
    }
