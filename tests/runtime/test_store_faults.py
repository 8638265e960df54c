"""Storage faults on the SQLite store: a full disk and a read-only volume answer 503 with the
reason, write nothing half-way, and the next request after the fault clears continues the chain.

The faults are SQLite's own error codes (``SQLITE_FULL`` through ``max_page_count``,
``SQLITE_READONLY`` through ``query_only``): the codes a full or read-only volume produces. File
modes cannot simulate them here, since the tests run as root and root ignores them. The
PostgreSQL outage is in test_replicas.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore
from tests.conftest import TENANT_HEADERS

BODY = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "faults",
    "args": {"path": "/etc/hostname"},
}


def _db(runtime: Runtime) -> object:
    assert isinstance(runtime.store, SQLiteReceiptStore)
    return runtime.store._db


@pytest.mark.parametrize(
    ("fault", "clear", "reason"),
    [
        ("PRAGMA max_page_count = {pages}", "PRAGMA max_page_count = 1073741823", "full"),
        ("PRAGMA query_only = ON", "PRAGMA query_only = OFF", "readonly"),
    ],
    ids=["disk-full", "read-only"],
)
def test_storage_fault_is_503_with_nothing_half_written(
    runtime: Runtime,
    client_for: Callable[[Runtime], TestClient],
    fault: str,
    clear: str,
    reason: str,
) -> None:
    client = client_for(runtime)
    first = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=BODY)
    assert first.status_code == 200
    db = _db(runtime)
    pages = db.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
    db.execute(fault.format(pages=pages))  # type: ignore[attr-defined]
    # Free space left in the last page may take a few more receipts before the volume is full.
    answers = [
        client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=BODY) for _ in range(60)
    ]
    db.execute(clear)  # type: ignore[attr-defined]
    codes = [r.status_code for r in answers]
    assert 503 in codes
    failed = answers[codes.index(503) :]
    assert {r.status_code for r in failed} == {503}, (
        "once full, every write fails until the fault clears"
    )
    written = answers[: codes.index(503)]
    problem = failed[0].json()
    assert reason in problem["detail"].lower() and "No receipt was written" in problem["detail"]
    assert failed[0].headers["Retry-After"] == "1"
    again = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=BODY)
    assert again.status_code == 200
    chain = client.get("/api/v1/receipts", headers=TENANT_HEADERS).json()["receipts"]
    expected = [first, *written, again]
    assert [(r["receipt_id"], r["lamport_clock"]) for r in chain] == [
        (answer.json()["receipt_id"], n) for n, answer in enumerate(expected, 1)
    ]
    assert again.json()["receipt_id"] not in {r.json().get("receipt_id") for r in failed}
