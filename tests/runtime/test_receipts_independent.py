"""Receipts checked with code written here, not the package's: rfc8785 + PyNaCl directly.

If the runtime's preimage, chain hash or signature drifted from upstream receipts (docs/upstream-contract.md#receipts), these fail
even when the package's own verifier agrees with itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading

import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import VerifyKey
from starlette.testclient import TestClient

from helm_runbook.formats.canonical import canonical_json
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.store.base import ReceiptQuery
from tests.conftest import TENANT, TENANT_HEADERS

V5_KEYS = ("signature_version", "receipt_id", "decision_id", "effect_id", "status", "output_hash", "prev_hash",
           "lamport_clock", "args_hash", "verdict", "reason_code", "policy_hash", "session_id")  # fmt: skip


def independent_chain_hash(receipt: dict[str, object]) -> str:
    view = {
        k: v
        for k, v in receipt.items()
        if k not in ("transparency", "log_id", "leaf_index") and v not in ("", None, {}, 0)
    }
    return hashlib.sha256(rfc8785.dumps(view)).hexdigest()


def test_receipts_verify_independently(client: TestClient, runtime: Runtime) -> None:
    for n in range(5):
        client.post("/api/v1/evaluate", headers=TENANT_HEADERS,
                    json={"tool": "file_read" if n % 2 else "rm", "effect_level": "E1", "session_id": "ind",
                          "args": {"path": "/etc/hostname", "n": n, "ü": "∑"}})  # fmt: skip
    receipts = client.get("/api/v1/receipts", headers=TENANT_HEADERS).json()["receipts"]
    public = VerifyKey(bytes.fromhex((runtime.settings.data_dir / "root.pub").read_text().strip()))
    previous = None
    for lamport, receipt in enumerate(receipts, start=1):
        preimage = rfc8785.dumps({key: receipt[key] for key in V5_KEYS})
        public.verify(preimage, bytes.fromhex(receipt["signature"]))  # raises when forged
        assert receipt["signature_version"] == "receipt.v5"
        assert receipt["lamport_clock"] == lamport
        assert receipt["prev_hash"] == (
            "" if previous is None else independent_chain_hash(previous)
        )
        material = f"{len(TENANT)}:{TENANT}{len(receipt['decision_id'])}:{receipt['decision_id']}"
        assert receipt["receipt_id"] == "rcpt-" + hashlib.sha256(material.encode()).hexdigest()
        assert receipt["public_key_set"] == {"ed25519": bytes(public).hex()}
        assert receipt["status"] == receipt["verdict"]
        assert receipt["blob_hash"] == receipt["args_hash"] == receipt["metadata"]["args_hash"]
        previous = receipt
    tampered = dict(receipts[0], verdict="ALLOW" if receipts[0]["verdict"] == "DENY" else "DENY")
    try:
        public.verify(
            rfc8785.dumps({key: tampered[key] for key in V5_KEYS}),
            bytes.fromhex(tampered["signature"]),
        )
        raise AssertionError("a changed verdict must not verify")
    except Exception as exc:  # nacl.exceptions.BadSignatureError
        assert "forged" in str(exc) or "Signature" in type(exc).__name__


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(json_values)
def test_fast_canonical_json_is_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(
    st.dictionaries(
        st.text(max_size=6), st.floats(allow_nan=False, allow_infinity=False), max_size=4
    )
)
def test_floats_and_unicode_keys_take_the_reference_path(value: dict[str, float]) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_concurrent_threads_on_one_session_never_gap_or_duplicate(runtime: Runtime) -> None:
    def worker() -> None:
        for _ in range(50):
            runtime.kernel.evaluate(tenant_id="default", principal="p", session_id="hot", action="file_read",
                                    resource="E1", args={}, context={})  # fmt: skip

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = runtime.store.list(ReceiptQuery("default", limit=1000, session_id="hot")).items
    assert sorted(i.receipt["lamport_clock"] for i in items) == list(range(1, 401))
    assert json.loads(json.dumps(items[-1].receipt))["prev_hash"] == independent_chain_hash(
        items[-2].receipt
    )


def test_the_stored_envelope_is_the_receipts_jcs_text_from_seal(runtime: Runtime) -> None:
    """The kernel hands the store the JCS text seal joined (no second serialisation of the
    receipt), and what is served back from it is the receipt the evaluate returned."""
    import sqlite3

    done = runtime.kernel.evaluate(tenant_id="default", principal="p", session_id="jcs",
                                   action="file_read", resource="E1", args={"path": "/ü"},
                                   context={})  # fmt: skip
    store_path = getattr(runtime.store, "path", None)
    assert store_path is not None, "the runtime fixture stores receipts in SQLite"
    with contextlib.closing(sqlite3.connect(store_path)) as db:
        (text,) = db.execute(
            "SELECT receipt_envelope FROM receipts WHERE receipt_id = ?",
            (done.receipt["receipt_id"],),
        ).fetchone()
    assert text.encode("utf-8") == canonical_json(done.receipt)
    assert runtime.store.get("default", done.receipt["receipt_id"]) == done.receipt


def _append_from_another_process(db_path: str, count: int) -> None:
    from pathlib import Path

    from helm_runbook.runtime.store.base import AppendedReceipt, ChainHead
    from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore

    store = SQLiteReceiptStore(Path(db_path))
    for n in range(count):

        def build(head: ChainHead, n: int = n) -> AppendedReceipt:
            rid = f"rcpt-{hashlib.sha256(f'{threading.get_native_id()}-{n}'.encode()).hexdigest()}"
            receipt = {"receipt_id": rid, "decision_id": "d", "verdict": "DENY", "reason_code": "X",
                       "executor_id": "p", "effect_id": "e", "policy_hash": "h", "timestamp": "t", "key_id": "root",
                       "lamport_clock": head.lamport + 1, "prev_hash": head.chain_hash, "session_id": "shared"}  # fmt: skip
            return AppendedReceipt(receipt, independent_chain_hash(receipt), n)

        store.append("default", "shared", build)
    store.close()


def test_two_processes_on_one_database_keep_the_chain_contiguous(tmp_path: object) -> None:
    import multiprocessing
    from pathlib import Path

    from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore

    db = Path(str(tmp_path)) / "helm.db"
    SQLiteReceiptStore(db).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_append_from_another_process, args=(str(db), 100)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = SQLiteReceiptStore(db)
    items = store.list(ReceiptQuery("default", limit=1000, session_id="shared")).items
    store.close()
    assert [i.receipt["lamport_clock"] for i in items] == list(range(1, 201))
    for before, after in itertools.pairwise(items):
        assert after.receipt["prev_hash"] == independent_chain_hash(before.receipt)
