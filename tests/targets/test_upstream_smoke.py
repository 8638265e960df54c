"""Upstream's kind and docker smoke tests, in our words, on the local target: installed with
exactly the flags its kind smoke passes (production, an inline signing key, admin and service
keys, tenant and principal, persistence; no proxy upstream: the chart's placeholder), then its
HTTP assertions, then a rollout restart that keeps the signing Secret and the receipts."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helm_runbook.chart.sdk import set_values
from helm_runbook.targets.local import LocalTarget

pytestmark = pytest.mark.slow
SIGNING_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
TENANT, AGENT = "tenant-smoke", "agent.smoke"


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalTarget]:
    local = LocalTarget(tmp_path)
    yield local
    local.close()


def test_upstreams_kind_smoke_flags_and_assertions_hold(target: LocalTarget) -> None:
    admin, service = secrets.token_hex(24), secrets.token_hex(24)  # as kind smoke: fresh per run
    values = set_values("helm.production=true", f"helm.signing.key={SIGNING_KEY}",
                        f"helm.auth.adminAPIKey={admin}", f"helm.auth.serviceAPIKey={service}",
                        f"helm.auth.tenantID={TENANT}", f"helm.auth.principalID={AGENT}",
                        "image.tag=local", "image.pullPolicy=IfNotPresent", "persistence.enabled=true")  # fmt: skip
    release = target.install(values, "helm-smoke")
    assert "points at no real upstream" in release.notes
    target.wait_ready(60)
    api = target.url()
    auth = {
        "Authorization": f"Bearer {admin}",
        "X-Helm-Tenant-ID": TENANT,
        "X-Helm-Principal-ID": AGENT,
    }

    assert httpx.get(f"{api}/healthz").status_code == 200
    assert httpx.get(target.url("health") + "/health").text == "OK"
    body = {"principal": AGENT, "action": "EXECUTE_TOOL", "resource": "unknown.tool.kind",
            "context": {"session_id": AGENT}}  # fmt: skip
    decision = httpx.post(f"{api}/api/v1/evaluate", headers=auth, json=body).json()
    assert str(decision["verdict"]).upper() == "DENY" and decision["receipt_id"] and decision["id"]

    assert httpx.get(f"{api}/api/v1/receipts?limit=1").status_code == 401
    no_tenant = {"Authorization": f"Bearer {admin}"}
    assert httpx.get(f"{api}/api/v1/receipts?limit=1", headers=no_tenant).status_code == 403
    listed = httpx.get(f"{api}/api/v1/receipts?limit=10", headers=auth).json()["receipts"]
    assert decision["receipt_id"] in [r["receipt_id"] for r in listed]
    before = httpx.get(f"{api}/api/v1/receipts/{decision['receipt_id']}", headers=auth)
    assert before.status_code == 200

    pack = httpx.post(f"{api}/api/v1/evidence/export", headers=auth,
                      json={"session_id": AGENT, "format": "tar.gz"})  # fmt: skip
    assert pack.status_code == 200 and pack.content
    octets = {"Content-Type": "application/octet-stream"}
    for route in ("/api/v1/evidence/verify", "/api/v1/replay/verify"):
        report = httpx.post(f"{api}{route}", headers=octets, content=pack.content).json()
        assert report.get("verified") is True or report.get("verdict") == "PASS", (route, report)
        assert all(v == "PASS" for v in (report.get("checks") or {}).values()), (route, report)

    pvc = target.pvc_dir("helm-smoke-helm-ai-kernel-data")
    assert (pvc / "root.key").is_file() and (pvc / "helm.db").is_file()
    root_key = hashlib.sha256((pvc / "root.key").read_bytes()).hexdigest()
    signing = dict(target.secrets["helm-smoke-helm-ai-kernel-signing"])

    target.restart_pod()  # kubectl rollout restart
    target.wait_ready(60)
    api = target.url()
    assert dict(target.secrets["helm-smoke-helm-ai-kernel-signing"]) == signing
    assert hashlib.sha256((pvc / "root.key").read_bytes()).hexdigest() == root_key
    after = httpx.get(f"{api}/api/v1/receipts/{decision['receipt_id']}", headers=auth)
    assert after.status_code == 200 and after.json() == before.json()
    issued = httpx.post(f"{api}/api/v1/evaluate", headers=auth, json=body).json()
    fetched = httpx.get(f"{api}/api/v1/receipts/{issued['receipt_id']}", headers=auth).json()
    key_fields = [k for k in ("public_key", "signer_public_key", "key_id") if k in before.json()]
    assert key_fields and all(fetched[k] == before.json()[k] for k in key_fields)
