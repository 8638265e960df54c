"""The receipts table as both SQL backends write and read it: one column list, one insert row,
one list filter. ``mark`` is the driver's placeholder (``?`` for sqlite3, ``%s`` for psycopg)."""

from __future__ import annotations

import json
from typing import Any

from helm_runbook.formats.receipts import causal_session_key
from helm_runbook.runtime.limits import MAX_STORED_RECEIPT_BYTES
from helm_runbook.runtime.store.base import (
    AppendedReceipt,
    ChainHead,
    ReceiptPage,
    ReceiptQuery,
    StoredReceipt,
    StoreUnavailable,
)

COLUMNS = (
    "receipt_id", "tenant_id", "causal_session_id", "session_id", "lamport_clock", "prev_hash",
    "chain_hash", "decision_id", "verdict", "reason_code", "executor_id", "effect_id",
    "policy_hash", "timestamp", "timestamp_ns", "key_id", "receipt_envelope",
)  # fmt: skip
_INTEGERS = ("lamport_clock", "timestamp_ns")


def schema_sql(sequence: str, integer: str) -> str:
    """The table and its indexes. ``append_sequence`` (``sequence``) only grows: rows are never
    deleted, and it is the list cursor. ``receipt_envelope`` is the exact JSON served. The unique
    (chain, lamport) index is what makes a forked chain impossible whatever the writers do."""
    columns = ",\n".join(
        f"    {name} {integer if name in _INTEGERS else 'TEXT'} NOT NULL{' UNIQUE' if name == 'receipt_id' else ''}"
        for name in COLUMNS
    )
    return (
        f"CREATE TABLE IF NOT EXISTS receipts (\n    append_sequence {sequence},\n{columns}\n);\n"
        "CREATE UNIQUE INDEX IF NOT EXISTS receipts_chain ON receipts (causal_session_id, lamport_clock);\n"
        "CREATE INDEX IF NOT EXISTS receipts_tenant_seq ON receipts (tenant_id, append_sequence);\n"
    )


def insert_sql(mark: str) -> str:
    return (
        f"INSERT INTO receipts ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    )


def insert_row(
    tenant_id: str, causal: str, session_id: str, appended: AppendedReceipt
) -> tuple[Any, ...]:
    """The row of one receipt; a receipt over ``MAX_STORED_RECEIPT_BYTES`` (UTF-8, as stored) is
    refused here, where every receipt is serialised, so whatever is stored can be exported and
    verified. The envelope is the builder's text when it has one (the kernel's JCS text)."""
    r = appended.receipt
    envelope = appended.text or json.dumps(r)
    size = len(envelope) if envelope.isascii() else len(envelope.encode())
    if size > MAX_STORED_RECEIPT_BYTES:
        raise ValueError(
            f"receipt of {size} bytes exceeds {MAX_STORED_RECEIPT_BYTES} "
            "(MAX_STORED_RECEIPT_BYTES): shorten the names in the request"
        )
    return (
        r["receipt_id"], tenant_id, causal, session_id, r["lamport_clock"], r["prev_hash"],
        appended.chain_hash, r["decision_id"], r["verdict"], r["reason_code"], r["executor_id"],
        r["effect_id"], r["policy_hash"], r["timestamp"], appended.timestamp_ns, r["key_id"], envelope,
    )  # fmt: skip


def head_sql(mark: str) -> str:
    """The chain's last lamport and chain hash (the next receipt links to them)."""
    return (
        f"SELECT lamport_clock, chain_hash FROM receipts WHERE causal_session_id = {mark} "
        "ORDER BY lamport_clock DESC LIMIT 1"
    )


def list_sql(query: ReceiptQuery, mark: str) -> tuple[str, list[Any]]:
    """``GET /api/v1/receipts`` filters, in append order, one row more than the page (has_more),
    cut where the envelopes' running size passes ``max_bytes``: the database sums lengths, so
    no more envelope bytes than that ever leave it. Each row ends with the uncut page's size."""
    where = [f"tenant_id = {mark}", f"append_sequence > {mark}"]
    args: list[Any] = [query.tenant_id, query.after_sequence]
    if query.session_id is not None:
        where.append(f"causal_session_id = {mark}")
        args.append(causal_session_key(query.tenant_id, query.session_id))
        if query.after_lamport:
            where.append(f"lamport_clock > {mark}")
            args.append(query.after_lamport)
    for column, value in (("verdict", query.verdict), ("reason_code", query.reason_code),
                          ("executor_id", query.executor_id), ("effect_id", query.effect_id)):  # fmt: skip
        if value is not None:
            where.append(f"{column} = {mark}")
            args.append(value)
    if query.time_from_ns is not None:
        where.append(f"timestamp_ns >= {mark}")
        args.append(query.time_from_ns)
    if query.time_to_ns is not None:
        where.append(f"timestamp_ns < {mark}")
        args.append(query.time_to_ns)
    args += [query.limit + 1, query.max_bytes]
    sql = (
        "SELECT r.append_sequence, r.receipt_envelope, sized.total FROM receipts r JOIN ("
        " SELECT append_sequence AS seq, COUNT(*) OVER () AS total,"
        " ROW_NUMBER() OVER (ORDER BY append_sequence) AS n,"
        " SUM(size) OVER (ORDER BY append_sequence) AS running"
        " FROM (SELECT append_sequence, LENGTH(receipt_envelope) AS size FROM receipts"
        f" WHERE {' AND '.join(where)} ORDER BY append_sequence LIMIT {mark}) page"
        f") sized ON r.append_sequence = sized.seq WHERE sized.n = 1 OR sized.running <= {mark}"
        " ORDER BY r.append_sequence"
    )
    return sql, args


def envelope(text: Any) -> dict[str, Any] | None:
    """A stored receipt envelope, or None when the row is malformed (edited or damaged by hand:
    it is skipped and counted, never a 500)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("receipt_id"), str)
        or type(value.get("lamport_clock")) is not int
    ):
        return None
    return value


def head(row: tuple[Any, ...] | None, causal: str) -> ChainHead:
    """The chain head from ``head_sql``'s row; a malformed one makes the chain unwritable (503),
    never a receipt linked to garbage nor an error blamed on the caller."""
    if row is None:
        return ChainHead(0, "")
    lamport, chain = row
    if type(lamport) is not int or lamport < 1 or not isinstance(chain, str):
        raise StoreUnavailable(
            f"the chain head of {causal[:300]} is malformed in the receipt database "
            "(restore the database from a backup)"
        )
    return ChainHead(lamport, chain)


def list_page(rows: list[tuple[Any, ...]], limit: int) -> ReceiptPage:
    """The page from ``list_sql``'s rows: at most ``limit`` receipts; more when any were cut.
    Malformed rows are left out and counted in ``skipped``."""
    items, skipped = [], 0
    for seq, env, _total in rows[:limit]:
        receipt = envelope(env)
        if receipt is None:
            skipped += 1
        else:
            items.append(StoredReceipt(int(seq), receipt))
    total = int(rows[0][2]) if rows else 0
    return ReceiptPage(items=items, has_more=total > min(len(rows), limit), skipped=skipped)


def sessions_sql(mark: str) -> str:
    """One row per chain of a tenant: session, first time, count and last lamport, oldest first."""
    return (
        "SELECT MIN(session_id), MIN(timestamp_ns), MIN(append_sequence), COUNT(*), MAX(lamport_clock) "
        f"FROM receipts WHERE tenant_id = {mark} GROUP BY causal_session_id "
        f"ORDER BY MIN(append_sequence) LIMIT {mark} OFFSET {mark}"
    )


def session_rows(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """``sessions_sql``'s rows as dicts; a malformed one (non-integer times or clocks) is left out."""
    out = []
    for session_id, first_ns, _sequence, count, last in rows:
        try:
            out.append({"session_id": str(session_id), "created_at_ns": int(first_ns),
                        "receipt_count": int(count), "last_lamport_clock": int(last)})  # fmt: skip
        except (TypeError, ValueError):
            continue
    return out
