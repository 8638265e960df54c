"""What one request's fields add up to (issue 30): names a caller chooses are capped on every
route, anonymous proxy calls are recorded as ``anonymous`` in sessions of their own, every stored
receipt can be exported and verified, export names are safe headers, ``helm.db`` is 0600 and a
malformed stored row is skipped and counted, never a 500."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helm_runbook.formats.evidence import verify_pack
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.handlers.evidence import attachment
from helm_runbook.runtime.limits import MAX_ID_BYTES
from helm_runbook.runtime.store.base import ReceiptQuery
from tests.conftest import ALLOW_FILE_READ, TENANT_HEADERS, RuntimeFactory

EVAL = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "s",
    "args": {"path": "/etc/hostname"},
}
PROXY_ENV = {"HELM_ENABLE_OPENAI_PROXY": "1"}
Clients = Callable[[Runtime], TestClient]


def _count(runtime: Runtime) -> int:
    return runtime.store.count()


@pytest.mark.parametrize(
    ("field", "body", "headers"),
    [
        ("model", {"model": "m" * (MAX_ID_BYTES + 1), "messages": []}, {}),
        ("model", {"model": "gpt 4", "messages": []}, {}),
        ("session_id", {"model": "m", "session_id": "s" * 200_000, "messages": []}, {}),
        ("session_id", {"model": "m", "session_id": "a/b", "messages": []}, {}),
        ("X-Helm-Principal", {"model": "m", "messages": []}, {"X-Helm-Principal": "p" * 5000}),
        ("X-Helm-Agent", {"model": "m", "messages": []}, {"X-Helm-Agent": "a b"}),
    ],
)
def test_proxy_names_over_the_cap_are_a_400_naming_the_field_and_write_nothing(
    make_runtime: RuntimeFactory, client_for: Clients, field: str, body: dict[str, object],
    headers: dict[str, str],
) -> None:  # fmt: skip
    runtime = make_runtime(ALLOW_FILE_READ, env=PROXY_ENV)
    response = client_for(runtime).post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(field), response.json()["detail"]
    assert _count(runtime) == 0


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("Evaluate route tool", {"tool": "t" * (MAX_ID_BYTES + 1)}),
        ("Evaluate route effect_level", {"effect_level": "E\n1"}),
        ("Evaluate route session_id", {"session_id": "s" * 300}),
    ],
)
def test_evaluate_names_over_the_cap_are_a_400_naming_the_field(
    runtime: Runtime, client: TestClient, field: str, change: dict[str, str]
) -> None:
    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json={**EVAL, **change})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(field), response.json()["detail"]
    headers = {**TENANT_HEADERS, "X-Helm-Workspace-ID": "w" * 1000}
    response = client.post("/api/v1/evaluate", headers=headers, json=EVAL)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("X-Helm-Workspace-ID")
    assert _count(runtime) == 0


def test_listing_filters_over_the_cap_are_a_400(client: TestClient) -> None:
    for name in ("principal", "resource", "session_id"):
        response = client.get("/api/v1/receipts", headers=TENANT_HEADERS, params={name: "x" * 300})
        assert response.status_code == 400, name
        assert response.json()["detail"].startswith(name)


def test_a_spoofed_principal_is_recorded_as_a_claim_of_an_anonymous_caller(
    make_runtime: RuntimeFactory, client_for: Clients
) -> None:
    runtime = make_runtime(ALLOW_FILE_READ, env=PROXY_ENV)
    client = client_for(runtime)
    response = client.post(
        "/v1/chat/completions", json={"model": "m", "session_id": "victim", "messages": []},
        headers={"X-Helm-Principal": "system-admin"},
    )  # fmt: skip
    assert response.headers["x-helm-verdict"] == "ALLOW"
    receipt = runtime.store.get("default", response.headers["x-helm-receipt-id"])
    assert receipt is not None
    assert receipt["executor_id"] == "anonymous"
    assert receipt["metadata"]["claimed_principal"] == "system-admin"
    assert receipt["session_id"] == "anon:testclient:victim"


def test_an_anonymous_caller_cannot_append_to_another_callers_session(
    make_runtime: RuntimeFactory, client_for: Clients
) -> None:
    runtime = make_runtime(ALLOW_FILE_READ, env=PROXY_ENV)
    client = client_for(runtime)
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL).status_code == 200
    client.post("/v1/chat/completions", json={"model": "m", "session_id": "s", "messages": []})
    owned = runtime.store.list(ReceiptQuery("default", session_id="s")).items
    assert [item.receipt["executor_id"] for item in owned] == ["system-admin"]
    export = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"session_id": "s"}
    )
    assert export.status_code == 200
    assert verify_pack(export.content, receipt_public_key=runtime.signer.public_key_hex,
                       evidence_public_key=runtime.evidence_signer.public_key_hex).verdict == "PASS"  # fmt: skip


def test_every_receipt_the_largest_names_allow_exports_and_verifies(
    make_runtime: RuntimeFactory, client_for: Clients
) -> None:
    runtime = make_runtime([{"action": "t" * MAX_ID_BYTES}], env=PROXY_ENV)
    client = client_for(runtime)
    big = "x" * MAX_ID_BYTES
    body = {"tool": "t" * MAX_ID_BYTES, "effect_level": big, "session_id": big, "args": {}}
    headers = {**TENANT_HEADERS, "X-Helm-Workspace-ID": big}
    assert client.post("/api/v1/evaluate", headers=headers, json=body).status_code == 200
    export = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"session_id": big}
    )
    assert export.status_code == 200
    assert verify_pack(export.content, receipt_public_key=runtime.signer.public_key_hex,
                       evidence_public_key=runtime.evidence_signer.public_key_hex).verdict == "PASS"  # fmt: skip


@pytest.mark.parametrize("session", ['a";filename="evil.sh', "caf\u00e9", "a\r\nX-Injected:1"])
def test_export_content_disposition_is_a_safe_rfc6266_header(session: str) -> None:
    # Such sessions cannot be written any more, but older runtimes stored them.
    header = attachment(f"evidence-{session}.tar.gz")
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert header.count('"') == 2 and header.count("filename=") == 1
    assert "filename*=UTF-8''" in header


def test_export_of_a_session_with_a_quote_answers_a_single_filename(
    runtime: Runtime, client: TestClient
) -> None:
    body = {**EVAL, "session_id": 'a";b'}
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).status_code == 200
    response = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"session_id": 'a";b'}
    )
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition == (
        "attachment; filename=\"evidence-a__b.tar.gz\"; filename*=UTF-8''evidence-a%22%3Bb.tar.gz"
    )


def test_helm_db_and_its_wal_are_owner_only_whatever_the_umask(
    make_runtime: RuntimeFactory, client_for: Clients, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        runtime = make_runtime(ALLOW_FILE_READ, data_dir=tmp_path / "data")
        client_for(runtime).post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL)
    finally:
        os.umask(old)
    for name in ("helm.db", "helm.db-wal", "helm.db-shm"):
        path = tmp_path / "data" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, oct(path.stat().st_mode))


def test_a_malformed_stored_row_is_skipped_and_counted_never_a_500(
    make_runtime: RuntimeFactory, client_for: Clients, tmp_path: Path
) -> None:
    runtime = make_runtime(ALLOW_FILE_READ, data_dir=tmp_path / "data")
    client = client_for(runtime)
    for _ in range(3):
        assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL).status_code == 200
    with sqlite3.connect(tmp_path / "data" / "helm.db") as db:
        db.execute("UPDATE receipts SET receipt_envelope = '{not json' WHERE lamport_clock = 2")
        db.execute("UPDATE receipts SET lamport_clock = 'x' WHERE lamport_clock = 3")
    listing = client.get("/api/v1/receipts", headers=TENANT_HEADERS)
    assert listing.status_code == 200
    assert listing.json()["count"] == 2 and listing.json()["skipped"] == 1
    assert client.get("/api/v1/proofgraph/sessions", headers=TENANT_HEADERS).status_code == 200
    graph = client.get("/api/v1/proofgraph/sessions/s/receipts", headers=TENANT_HEADERS)
    assert graph.status_code == 200
    export = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"session_id": "s"}
    )
    assert export.status_code == 200 and export.headers["x-helm-receipts-skipped"] == "1"
    with tarfile.open(fileobj=io.BytesIO(export.content)) as tar:
        assert len([n for n in tar.getnames() if n.startswith("receipts/")]) == 2
    evaluate = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL)
    assert evaluate.status_code == 503, (
        evaluate.text
    )  # the chain head is damaged: not the caller's fault
    assert "malformed" in json.loads(evaluate.text)["detail"]
