"""The store contract, run against every backend: SQLite (a file) and PostgreSQL (a real server).
Chains stay contiguous and fork-free under concurrent appends from threads and from processes."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helm_runbook.runtime.store.base import (
    AppendedReceipt,
    ChainHead,
    ReceiptPage,
    ReceiptQuery,
    ReceiptStore,
)
from tests.runtime.test_receipts_independent import independent_chain_hash

StoreFactory = Callable[[], ReceiptStore]


def open_backend(backend: str, where: str) -> ReceiptStore:
    if backend == "sqlite":
        from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore

        return SQLiteReceiptStore(Path(where))
    from helm_runbook.runtime.store.postgres import PostgresReceiptStore

    return PostgresReceiptStore(where, max_open=4, max_idle=2)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "helm.db")
    return "postgres", request.getfixturevalue("pg_url")


@pytest.fixture
def open_store(backend: tuple[str, str]) -> Iterator[StoreFactory]:
    opened: list[ReceiptStore] = []

    def factory() -> ReceiptStore:
        opened.append(open_backend(*backend))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


def builder(
    session: str, n: int, *, verdict: str = "DENY", ts: int | None = None
) -> Callable[[ChainHead], AppendedReceipt]:
    def build(head: ChainHead) -> AppendedReceipt:
        rid = (
            "rcpt-"
            + hashlib.sha256(f"{session}-{n}-{threading.get_native_id()}".encode()).hexdigest()[:24]
        )
        receipt = {"receipt_id": rid, "decision_id": f"dec-{n}", "verdict": verdict, "reason_code": "X",
                   "executor_id": "p", "effect_id": "e", "policy_hash": "h", "timestamp": "t", "key_id": "root",
                   "lamport_clock": head.lamport + 1, "prev_hash": head.chain_hash, "session_id": session}  # fmt: skip
        return AppendedReceipt(
            receipt, independent_chain_hash(receipt), ts if ts is not None else 0
        )

    return build


def _assert_contiguous(items: list[Any]) -> None:
    assert [i.receipt["lamport_clock"] for i in items] == list(range(1, len(items) + 1))
    assert items[0].receipt["prev_hash"] == ""
    for before, after in itertools.pairwise(items):
        assert after.receipt["prev_hash"] == independent_chain_hash(before.receipt)


def test_append_links_the_chain_and_reads_it_back(open_store: StoreFactory) -> None:
    store = open_store()
    first = store.append("t", "s", builder("s", 1))
    second = store.append("t", "s", builder("s", 2, verdict="ALLOW"))
    other = store.append("t", "other", builder("other", 3))
    assert (first.receipt["lamport_clock"], first.receipt["prev_hash"]) == (1, "")
    assert second.receipt["prev_hash"] == first.chain_hash
    assert other.receipt["lamport_clock"] == 1
    assert store.get("t", first.receipt["receipt_id"]) == first.receipt
    assert store.get("other-tenant", first.receipt["receipt_id"]) is None
    assert store.get_by_chain_hash("t", second.chain_hash) == second.receipt
    assert store.sequence_of("t", second.receipt["receipt_id"]) == 2
    assert store.count() == 3
    sessions = store.sessions("t", 10, 0)
    assert [(s["session_id"], s["receipt_count"], s["last_lamport_clock"]) for s in sessions] == [
        ("s", 2, 2),
        ("other", 1, 1),
    ]


def test_list_filters_and_pages_in_append_order(open_store: StoreFactory) -> None:
    store = open_store()
    for n in range(1, 8):
        store.append(
            "t",
            f"s{n % 2}",
            builder(f"s{n % 2}", n, verdict="ALLOW" if n % 3 == 0 else "DENY", ts=n * 10),
        )
    page = store.list(ReceiptQuery("t", limit=3))
    assert [i.sequence for i in page.items] == [1, 2, 3] and page.has_more
    rest = store.list(ReceiptQuery("t", limit=10, after_sequence=3))
    assert [i.sequence for i in rest.items] == [4, 5, 6, 7] and not rest.has_more
    assert len(store.list(ReceiptQuery("t", limit=10, verdict="ALLOW")).items) == 2
    assert [
        i.receipt["lamport_clock"]
        for i in store.list(ReceiptQuery("t", limit=10, session_id="s1")).items
    ] == [1, 2, 3, 4]
    window = store.list(ReceiptQuery("t", limit=10, time_from_ns=20, time_to_ns=50)).items
    assert [i.sequence for i in window] == [2, 3, 4]


def test_a_page_stops_at_its_byte_budget_but_always_serves_one_receipt(
    open_store: StoreFactory,
) -> None:
    store = open_store()
    for n in range(1, 6):
        store.append("t", "s", builder("s", n))
    size = len(json.dumps(store.list(ReceiptQuery("t", limit=1)).items[0].receipt))
    page = store.list(ReceiptQuery("t", limit=10, max_bytes=size * 2 + size // 2))
    assert [i.sequence for i in page.items] == [1, 2] and page.has_more
    tiny = store.list(ReceiptQuery("t", limit=10, after_sequence=2, max_bytes=1))
    assert [i.sequence for i in tiny.items] == [3] and tiny.has_more
    last = store.list(ReceiptQuery("t", limit=10, after_sequence=4, max_bytes=1))
    assert [i.sequence for i in last.items] == [5] and not last.has_more
    assert store.list(ReceiptQuery("t", limit=10, after_sequence=5)) == ReceiptPage([], False)


def test_a_failing_builder_rolls_back_only_its_own_receipt(open_store: StoreFactory) -> None:
    store = open_store()

    def bad(head: ChainHead) -> AppendedReceipt:
        raise RuntimeError("signer failed")

    results = store.append_batch(
        [("t", "s", builder("s", 1)), ("t", "s", bad), ("t", "s", builder("s", 2))]
    )
    assert isinstance(results[1], RuntimeError)
    assert [r.receipt["lamport_clock"] for r in results if isinstance(r, AppendedReceipt)] == [1, 2]
    with pytest.raises(RuntimeError, match="signer failed"):
        store.append("t", "s", bad)
    _assert_contiguous(store.list(ReceiptQuery("t", limit=10)).items)


def test_receipts_survive_closing_and_reopening(open_store: StoreFactory) -> None:
    store = open_store()
    appended = [store.append("t", "s", builder("s", n)) for n in range(5)]
    store.close()
    again = open_store()
    assert [i.receipt for i in again.list(ReceiptQuery("t", limit=10)).items] == [
        a.receipt for a in appended
    ]


def test_threads_on_one_chain_never_gap_or_fork(open_store: StoreFactory) -> None:
    store = open_store()

    def worker(w: int) -> None:
        for n in range(40):
            if n % 4 == 0:
                store.append_batch([("t", "hot", builder("hot", f"{w}.{n}.{k}")) for k in range(3)])
            else:
                store.append("t", "hot", builder("hot", f"{w}.{n}"))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    items = store.list(ReceiptQuery("t", limit=1000, session_id="hot")).items
    assert len(items) == 6 * (30 + 10 * 3)
    _assert_contiguous(sorted(items, key=lambda i: i.receipt["lamport_clock"]))


def _append_in_another_process(backend: str, where: str, count: int) -> None:
    store = open_backend(backend, where)
    for n in range(count):
        store.append("t", "shared", builder("shared", n))
    store.close()


def test_two_processes_on_one_database_keep_the_chain_contiguous(
    backend: tuple[str, str], open_store: StoreFactory
) -> None:
    open_store().close()  # the schema exists before both start
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_in_another_process, args=(*backend, 100)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    items = open_store().list(ReceiptQuery("t", limit=1000, session_id="shared")).items
    assert len(items) == 200
    _assert_contiguous(sorted(items, key=lambda i: i.receipt["lamport_clock"]))


def test_a_reader_paging_by_cursor_never_skips_a_receipt(open_store: StoreFactory) -> None:
    """Writers on different chains commit concurrently; a reader following ``after_sequence``
    while they write must end up with every receipt (sequence order is commit order)."""
    writer_store, reader_store = open_store(), open_store()
    done = threading.Event()

    def writer(chain: int) -> None:
        for n in range(60):
            writer_store.append("t", f"c{chain}", builder(f"c{chain}", f"{chain}.{n}"))

    threads = [threading.Thread(target=writer, args=(c,)) for c in range(6)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    cursor = 0
    while True:
        finished = done.is_set()
        page = reader_store.list(ReceiptQuery("t", limit=25, after_sequence=cursor))
        seen.extend(i.sequence for i in page.items)
        cursor = seen[-1] if seen else 0
        if finished and not page.has_more and not page.items:
            break
        if not any(t.is_alive() for t in threads):
            done.set()
    stored = [i.sequence for i in reader_store.list(ReceiptQuery("t", limit=1000)).items]
    assert len(stored) == 360
    assert seen == stored, f"{len(set(stored) - set(seen))} receipts skipped by a cursor reader"


def test_the_builders_text_is_the_stored_envelope_and_its_size_is_counted_in_utf8(
    open_store: StoreFactory,
) -> None:
    """A receipt that comes with its JSON text (the kernel's JCS text) is stored as that text,
    not serialised again; ``MAX_STORED_RECEIPT_BYTES`` counts the stored text's UTF-8 bytes."""
    from helm_runbook.formats.canonical import canonical_text
    from helm_runbook.runtime.limits import MAX_STORED_RECEIPT_BYTES

    store = open_store()

    def with_text(note: str) -> Callable[[ChainHead], AppendedReceipt]:
        def build(head: ChainHead) -> AppendedReceipt:
            appended = builder("s", head.lamport + 1)(head)
            appended.receipt["note"] = note
            return AppendedReceipt(appended.receipt, appended.chain_hash, 0,
                                   canonical_text(appended.receipt))  # fmt: skip

        return build

    stored = store.append("t", "s", with_text("ü" * 6000))  # 12,000 bytes as stored
    assert store.get("t", stored.receipt["receipt_id"]) == stored.receipt
    page = store.list(ReceiptQuery("t"))
    assert [item.receipt for item in page.items] == [stored.receipt]
    assert list(page.items[0].receipt) == sorted(stored.receipt)  # the JCS text was stored
    with pytest.raises(ValueError, match=f"bytes exceeds {MAX_STORED_RECEIPT_BYTES}"):
        store.append("t", "s", with_text("ü" * (MAX_STORED_RECEIPT_BYTES // 2)))
    assert store.count() == 1
