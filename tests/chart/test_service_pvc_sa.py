"""templates/service.yaml, pvc.yaml, serviceaccount.yaml."""

from __future__ import annotations

from tests.chart.conftest import template


def test_service_ports_follow_metrics() -> None:
    ports = template().get("Service")["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [
        ("http", 8080, "http"),
        ("health", 8081, "health"),
    ]
    with_metrics = template({"helm.metrics.enabled": True}).get("Service")["spec"]["ports"]
    assert with_metrics[-1] == {
        "name": "metrics",
        "port": 9090,
        "targetPort": "metrics",
        "protocol": "TCP",
    }


def test_pvc_and_existing_claim() -> None:
    pvc = template({"persistence.size": "5Gi", "persistence.storageClass": "fast"}).get(
        "PersistentVolumeClaim"
    )
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["storageClassName"] == "fast"
    existing = template({"persistence.existingClaim": "kept"})
    assert not existing.has("PersistentVolumeClaim")
    volumes = existing.get("Deployment")["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == "kept"


def test_service_account_token_only_for_crd() -> None:
    assert template().get("ServiceAccount")["automountServiceAccountToken"] is False
    crd = template({"helm.policy.source.kind": "crd"})
    assert crd.get("ServiceAccount")["automountServiceAccountToken"] is True
    assert not template({"serviceAccount.create": False}).has("ServiceAccount")
