"""templates/servicemonitor.yaml, ingress.yaml, the CRD and its RBAC, NOTES.txt and the helm test pod."""

from __future__ import annotations

from tests.chart.conftest import template


def test_servicemonitor() -> None:
    assert not template({"helm.metrics.enabled": True}).has("ServiceMonitor")
    monitor = template({"helm.metrics.enabled": True, "helm.metrics.serviceMonitor.enabled": True,
                        "helm.metrics.serviceMonitor.labels": {"release": "prom"}}).get("ServiceMonitor")  # fmt: skip
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "prom"


def test_ingress() -> None:
    ingress = template({"ingress.enabled": True, "ingress.className": "nginx",
                        "ingress.tls": [{"secretName": "t", "hosts": ["helm.local"]}]}).get("Ingress")  # fmt: skip
    assert ingress["spec"]["ingressClassName"] == "nginx"
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"]["service"] == {"name": "helm-ai-kernel", "port": {"name": "http"}}


def test_crd_and_rbac() -> None:
    release = template({"helm.policy.source.kind": "crd", "helm.policy.source.crd.install": True,
                        "helm.policy.source.crd.allowedConfigMapNames": ["policy"]})  # fmt: skip
    crd = release.get("CustomResourceDefinition")
    assert crd["metadata"]["name"] == "helmpolicybundles.policy.helm.ai"
    assert crd["spec"]["names"]["shortNames"] == ["hpb"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == [
        "tenantId",
        "workspaceId",
        "policyEpoch",
        "bundleRef",
        "expectedPolicyHash",
    ]
    rules = release.get("Role")["rules"]
    assert rules[0]["verbs"] == ["get", "list", "watch"]
    assert {"resources": ["configmaps"], "resourceNames": ["policy"]}.items() <= rules[-1].items()
    assert release.get("RoleBinding")["subjects"][0]["name"] == "helm-ai-kernel"
    assert not template({"helm.policy.source.kind": "crd"}).has("CustomResourceDefinition")
    assert not template().has("Role")


def test_notes_point_at_the_health_port_and_warn_about_dev_keys() -> None:
    notes = template().notes
    assert "port-forward svc/helm-ai-kernel 8081:8081" in notes
    assert "curl -fsS http://127.0.0.1:8081/health" in notes
    assert "development signing key" in notes
    assert "every governed action is denied" in notes


def test_helm_test_pod_gets_the_health_port() -> None:
    pod = template().get("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://helm-ai-kernel:8081/health" in pod["spec"]["containers"][0]["args"][0]


def test_notes_warn_that_an_ingress_exposes_the_public_proxy() -> None:
    assert "WARNING: the Ingress" not in template().notes
    notes = template({"ingress.enabled": True}).notes
    assert "WARNING: the Ingress routes its paths to the API port" in notes
    assert "POST /v1/chat/completions" in notes and "whitelist-source-range" in notes
    quiet = template({"ingress.enabled": True, "helm.proxy.enabled": False}).notes
    assert "/v1/chat/completions" not in quiet


def test_notes_name_the_policy_source_an_existing_config_map_supplies() -> None:
    notes = template({"helm.policy.source.mountedFile.existingConfigMap": "acme-policy"}).notes
    assert "every governed action is denied" not in notes
    assert "from your ConfigMap acme-policy" in notes and "runtimeActions is not used" in notes
    from_secret = template({"helm.policy.source.mountedFile.existingSecret": "acme-policy"}).notes
    assert "from your Secret acme-policy" in from_secret
