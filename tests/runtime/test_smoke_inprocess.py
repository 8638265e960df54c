"""The smallest end-to-end check: an evaluate through the ASGI app writes a verifiable receipt."""

from __future__ import annotations

from starlette.testclient import TestClient

from helm_runbook.runtime.context import Runtime
from helm_runbook.tools.verify import verify_receipts
from tests.conftest import TENANT_HEADERS


def test_allow_then_deny_chain_verifies(client: TestClient, runtime: Runtime) -> None:
    allow = client.post(
        "/api/v1/evaluate",
        headers=TENANT_HEADERS,
        json={
            "tool": "file_read",
            "effect_level": "E1",
            "session_id": "s1",
            "args": {"path": "/etc/hostname"},
        },
    )
    assert allow.status_code == 200, allow.text
    assert allow.json()["verdict"] == "ALLOW"
    deny = client.post(
        "/api/v1/evaluate",
        headers=TENANT_HEADERS,
        json={
            "action": "EXECUTE_TOOL",
            "resource": "unknown.tool.kind",
            "context": {"session_id": "s1"},
        },
    )
    assert deny.json()["reason_code"] == "PDP_DENY"
    assert deny.json()["lamport_clock"] == 2
    listed = client.get("/api/v1/receipts", headers=TENANT_HEADERS).json()
    report = verify_receipts(listed["receipts"], runtime.signer.public_key_hex)
    assert report.ok, str(report)
    assert report.receipts == 2
