"""Group commit: concurrent requests share transactions, yet each chain stays contiguous and a
failing receipt rolls back alone."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.store.base import AppendedReceipt, ChainHead, ReceiptQuery
from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore
from helm_runbook.tools.verify import verify_receipts


def _request(session: str) -> dict[str, object]:
    return {
        "tenant_id": "default",
        "principal": "system-admin",
        "session_id": session,
        "action": "file_read",
        "resource": "E1",
        "args": {"path": "/etc/hostname"},
        "context": {"args": {"path": "/etc/hostname"}},
    }


def test_concurrent_evaluations_share_commits_and_chains_stay_contiguous(runtime: Runtime) -> None:
    async def burst() -> None:
        await asyncio.gather(
            *(runtime.kernel.evaluate_async(**_request(f"s{n % 3}")) for n in range(90))
        )

    asyncio.run(burst())
    committer = runtime.kernel.committer
    assert committer.appended == 90
    assert committer.batches < 90, "requests ready in the same loop turn must share a commit"
    page = runtime.store.list(ReceiptQuery("default", limit=1000))
    lamports: dict[str, list[int]] = {}
    for item in page.items:
        lamports.setdefault(item.receipt["session_id"], []).append(item.receipt["lamport_clock"])
    assert {s: sorted(v) for s, v in lamports.items()} == {
        f"s{n}": list(range(1, 31)) for n in range(3)
    }
    report = verify_receipts([i.receipt for i in page.items], runtime.signer.public_key_hex)
    assert report.ok, str(report)


def test_a_failing_builder_rolls_back_only_its_own_receipt(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(tmp_path / "helm.db")

    def good(n: int):  # type: ignore[no-untyped-def]
        def build(head: ChainHead) -> AppendedReceipt:
            receipt = {
                "receipt_id": f"rcpt-{n}", "decision_id": f"dec-{n}", "verdict": "ALLOW",
                "reason_code": "", "executor_id": "p", "effect_id": "e", "policy_hash": "h",
                "timestamp": "t", "key_id": "root", "lamport_clock": head.lamport + 1,
                "prev_hash": head.chain_hash, "session_id": "s",
            }  # fmt: skip
            return AppendedReceipt(receipt, f"{n:064x}", n)

        return build

    def bad(head: ChainHead) -> AppendedReceipt:
        raise RuntimeError("signer failed")

    results = store.append_batch([("t", "s", good(1)), ("t", "s", bad), ("t", "s", good(2))])
    assert isinstance(results[1], RuntimeError)
    assert [r.receipt["lamport_clock"] for r in results if isinstance(r, AppendedReceipt)] == [1, 2]
    listed = store.list(ReceiptQuery("t", limit=10))
    assert [i.receipt["receipt_id"] for i in listed.items] == ["rcpt-1", "rcpt-2"]
    with pytest.raises(RuntimeError, match="signer failed"):
        store.append("t", "s", bad)
    # A batch of one runs without a savepoint: its failure (the builder's, or a duplicate
    # receipt) rolls the whole transaction back and leaves the store ready for the next one.
    duplicate = store.append_batch([("t", "s", good(1))])
    assert len(duplicate) == 1 and isinstance(duplicate[0], sqlite3.IntegrityError)
    assert store.append("t", "s", good(3)).receipt["lamport_clock"] == 3
    listed = store.list(ReceiptQuery("t", limit=10))
    assert [i.receipt["receipt_id"] for i in listed.items] == ["rcpt-1", "rcpt-2", "rcpt-3"]
    assert not store._db.in_transaction
    store.close()
