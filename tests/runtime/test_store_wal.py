"""The SQLite store's WAL stays bounded under sustained writes: the checkpointer makes it start
over once it passes ``wal_reset_frames``, instead of letting every commit extend it."""

from __future__ import annotations

from pathlib import Path

from helm_runbook.runtime.store.base import AppendedReceipt, ChainHead, ReceiptQuery
from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore

PAD = "x" * 1500  # a receipt's usual size: about five 4 KiB frames per commit


def build(head: ChainHead) -> AppendedReceipt:
    receipt = {
        "receipt_id": f"r{head.lamport + 1}", "lamport_clock": head.lamport + 1,
        "prev_hash": head.chain_hash, "decision_id": "d", "verdict": "ALLOW", "reason_code": "",
        "executor_id": "e", "effect_id": "f", "policy_hash": "p", "timestamp": "t",
        "key_id": "k", "pad": PAD,
    }  # fmt: skip
    return AppendedReceipt(receipt, f"{head.lamport + 1:064x}", 1)


def test_the_wal_starts_over_under_sustained_writes(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(
        tmp_path / "helm.db", checkpoint_interval_s=0.01, wal_reset_frames=200
    )
    try:
        for _ in range(4000):  # back to back: a PASSIVE checkpoint alone never catches up
            store.append("t", "s", build)
        wal_bytes = (tmp_path / "helm.db-wal").stat().st_size
        items = store.list(ReceiptQuery("t", limit=5000, session_id="s")).items
    finally:
        store.close()
    # Without the reset the WAL holds every commit's frames: about 84 MiB here.
    assert wal_bytes < 42 << 20, f"WAL grew to {wal_bytes >> 20} MiB"
    assert [item.receipt["lamport_clock"] for item in items] == list(range(1, 4001))
