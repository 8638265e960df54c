"""Evidence routes, metrics and limits over HTTP (in-process ASGI client)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from helm_runbook.cli import main as cli_main
from helm_runbook.runtime.app import create_health_app, create_metrics_app
from helm_runbook.runtime.context import Runtime
from tests.conftest import ALLOW_FILE_READ, TENANT_HEADERS, RuntimeFactory

Client = Callable[[Runtime], TestClient]


def _evaluate(client: TestClient, session: str, tool: str = "file_read") -> None:
    body = {
        "tool": tool,
        "effect_level": "E1",
        "session_id": session,
        "args": {"path": "/etc/hostname"},
    }
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).status_code == 200


def test_export_then_verify_pass_and_tampered_fail(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    assert (
        client.post("/api/v1/evidence/export", headers=TENANT_HEADERS, json={}).status_code == 409
    )
    for n in range(4):
        _evaluate(client, f"s{n % 2}")
    exported = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"session_id": "s0"}
    )
    assert exported.status_code == 200
    assert exported.headers["x-helm-evidence-hash"].startswith("sha256:")
    pack = exported.content
    for route in ("/api/v1/evidence/verify", "/api/v1/replay/verify"):
        verdict = client.post(route, content=pack).json()
        assert verdict["verdict"] == "PASS" and verdict["verified"] is True, verdict
        assert verdict["roots"]["entry_count"] == 2
    assert "replay" in client.post("/api/v1/replay/verify", content=pack).json()["checks"]
    multipart = client.post(
        "/api/v1/evidence/verify", files={"bundle": ("pack.tar.gz", pack)}
    ).json()
    assert multipart["verdict"] == "PASS"

    raw = io.BytesIO(gzip.decompress(pack))
    with tarfile.open(fileobj=raw) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    name = next(n for n in files if n.startswith("receipts/"))
    files[name] = files[name].replace(b'"DENY"', b'"ALLOW"').replace(b'"ALLOW"', b'"DENY"', 1)
    files[name] = files[name][:-2] + b" \n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tampered = gzip.compress(out.getvalue())
    failed = client.post("/api/v1/evidence/verify", content=tampered).json()
    assert failed["verdict"] == "FAIL"
    assert any(name in e for e in failed["errors"])

    pack_file = tmp_path / "pack.tar.gz"
    pack_file.write_bytes(pack)
    assert (
        cli_main(["verify-evidence", str(pack_file), "--public-key", runtime.signer.public_key_hex])
        == 0
    )
    pack_file.write_bytes(tampered)
    assert (
        cli_main(["verify-evidence", str(pack_file), "--public-key", runtime.signer.public_key_hex])
        == 5  # a check failed
    )


def test_export_rejects_bad_input(client: TestClient) -> None:
    bad_format = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"format": "zip"}
    )
    assert bad_format.status_code == 400 and "tar.gz" in bad_format.json()["detail"]
    assert client.post("/api/v1/evidence/export", json={}).status_code == 401
    assert client.post("/api/v1/evidence/verify", content=b"").status_code == 400
    garbage = client.post("/api/v1/evidence/verify", content=b"not a pack").json()
    assert garbage["verdict"] == "FAIL"


def test_metrics_count_what_happened(make_runtime: RuntimeFactory, client_for: Client) -> None:
    runtime = make_runtime(ALLOW_FILE_READ, env={"HELM_METRICS_ENABLED": "1"})  # off: no registry
    client = client_for(runtime)
    _evaluate(client, "m")  # ALLOW (file_read on /etc/hostname)
    _evaluate(client, "m", tool="rm_rf")  # PDP_DENY
    _evaluate(client, "m", tool="rm_rf")
    pack = client.post("/api/v1/evidence/export", headers=TENANT_HEADERS, json={}).content
    client.post("/api/v1/evidence/verify", content=pack)
    assert runtime.metrics is not None
    for app in (create_metrics_app(runtime.metrics), create_health_app(runtime.metrics)):
        text = TestClient(app).get("/metrics").text
        samples = {
            s.name + str(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples["helm_decisions_total[]"] == 3
        assert samples["helm_allows_total[]"] == 1
        assert samples["helm_denials_total[]"] == 2
        assert samples["helm_verifications_total[]"] == 1
        assert samples["helm_denial_reasons[('reason', 'PDP_DENY')]"] == 2
        assert samples["helm_tool_decisions[('tool', 'rm_rf')]"] == 2
        assert samples["helm_chain_length[]"] == 3
        assert samples["helm_decision_latency_seconds_count[]"] == 3
        assert samples["helm_decision_latency_p99_ms[]"] > 0
        assert "process_cpu_seconds_total[]" in samples
    assert TestClient(create_health_app()).get("/metrics").status_code == 404


@pytest.mark.parametrize(
    "limit_env", [{"HELM_LIMIT_GLOBAL_RPS": "1", "HELM_LIMIT_GLOBAL_BURST": "2"}]
)
def test_rate_limit_429_with_headers(
    make_runtime: RuntimeFactory, client_for: Client, limit_env: dict[str, str]
) -> None:
    client = client_for(make_runtime(env=limit_env))
    statuses = [
        client.get("/api/v1/receipts", headers=TENANT_HEADERS).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    limited = client.get("/api/v1/receipts", headers=TENANT_HEADERS)
    assert limited.headers["retry-after"] == "5"
    assert limited.headers["x-helm-limiter-reason"] == "GLOBAL_RATE_LIMIT_EXCEEDED"
    assert limited.json()["title"] == "Too Many Requests"
    assert client.get("/healthz").status_code == 200, "health routes are never limited"


def test_actor_limit_is_per_principal(make_runtime: RuntimeFactory, client_for: Client) -> None:
    client = client_for(
        make_runtime(env={"HELM_LIMIT_ACTOR_RPS": "1", "HELM_LIMIT_ACTOR_BURST": "1"})
    )
    assert client.get("/api/v1/receipts", headers=TENANT_HEADERS).status_code == 200
    second = client.get("/api/v1/receipts", headers=TENANT_HEADERS)
    assert second.headers["x-helm-limiter-reason"] == "ACTOR_RESOURCE_RATE_LIMIT_EXCEEDED"
    other = {**TENANT_HEADERS, "X-Helm-Principal-ID": "someone-else"}
    assert (
        client.get("/api/v1/receipts", headers=other).status_code == 403
    )  # limited separately, then auth


def test_concurrency_cap_503(make_runtime: RuntimeFactory, client_for: Client) -> None:
    runtime = make_runtime(env={"HELM_CONCURRENCY_MAX": "1"})
    client = client_for(runtime)
    assert runtime.gate is not None
    assert client.get("/api/v1/receipts", headers=TENANT_HEADERS).status_code == 200
    runtime.gate.in_flight = 1  # one request in flight
    capped = client.get("/api/v1/receipts", headers=TENANT_HEADERS)
    assert capped.status_code == 503
    assert capped.headers["x-helm-limiter-reason"] == "CONCURRENCY_LIMIT_EXCEEDED"
    assert capped.headers["retry-after"] == "1"
