"""SQLite receipt store: ``<data-dir>/helm.db`` in WAL mode (docs/upstream-contract.md#data-dir).

Durability: WAL with ``synchronous=NORMAL`` makes a committed receipt survive the process being
killed (SIGKILL, OOM); ``HELM_SQLITE_SYNCHRONOUS=FULL`` also survives power loss at the cost of
an fsync per receipt. Checkpoints (copying the WAL back into the database, with fsyncs) run on a
background thread instead of inside whichever request crosses the WAL threshold, which keeps
them off the request path's tail latency. Chains are serialised by ``BEGIN IMMEDIATE`` (one writer across processes)
and the unique (causal_session_id, lamport_clock) index.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helm_runbook.runtime.receipts import causal_session_key
from helm_runbook.runtime.store import sql
from helm_runbook.runtime.store.base import (
    AppendedReceipt,
    AppendJob,
    BatchAppender,
    ChainHead,
    ReceiptBuilder,
    ReceiptPage,
    ReceiptQuery,
    StoredReceipt,
    StoreUnavailable,
)

_SCHEMA = sql.schema_sql("INTEGER PRIMARY KEY", "INTEGER")
_INSERT = sql.insert_sql("?")
_HEAD = sql.head_sql("?")


class SQLiteReceiptStore(BatchAppender):
    """One connection, one writer lock per process; other processes wait on SQLite's lock."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        checkpoint_interval_s: float = 0.5,
    ):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open receipt database {path}: {exc}") from exc
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(checkpoint_interval_s, busy_timeout_ms),
            name="sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval_s: float, busy_timeout_ms: int) -> None:
        """PASSIVE checkpoints on a connection of their own; never blocks writers."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        try:
            while not self._closed.wait(interval_s):
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def append_batch(self, jobs: Sequence[AppendJob]) -> list[AppendedReceipt | Exception]:
        """Append several receipts in ONE transaction (group commit); each job is isolated by a
        savepoint, so one failing builder rolls back only its own receipt."""
        results: list[AppendedReceipt | Exception] = []
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"receipt database is not writable: {exc}") from exc
            try:
                for tenant_id, session_id, build in jobs:
                    db.execute("SAVEPOINT job")
                    try:
                        appended = self._append_one(tenant_id, session_id, build)
                    except sqlite3.Error as exc:
                        if not isinstance(exc, sqlite3.IntegrityError):
                            # A storage failure (full, read-only, I/O): SQLite may already have
                            # rolled the whole transaction back, so the whole batch fails.
                            raise
                        db.execute("ROLLBACK TO job")
                        db.execute("RELEASE job")
                        results.append(exc)
                    except Exception as exc:  # the builder's own failure: only its receipt goes
                        db.execute("ROLLBACK TO job")
                        db.execute("RELEASE job")
                        results.append(exc)
                    else:
                        db.execute("RELEASE job")
                        results.append(appended)
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"receipt write failed: {exc}") from exc
                raise
        return results

    def _append_one(
        self, tenant_id: str, session_id: str, build: ReceiptBuilder
    ) -> AppendedReceipt:
        causal = causal_session_key(tenant_id, session_id)
        row = self._db.execute(_HEAD, (causal,)).fetchone()
        appended = build(ChainHead(row[0], row[1]) if row else ChainHead(0, ""))
        self._db.execute(_INSERT, sql.insert_row(tenant_id, causal, session_id, appended))
        return appended

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def get(self, tenant_id: str, receipt_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT receipt_envelope FROM receipts WHERE tenant_id = ? AND receipt_id = ?",
            (tenant_id, receipt_id),
        )
        return json.loads(row[0]) if row else None

    def get_by_chain_hash(self, tenant_id: str, chain_hash: str) -> dict[str, Any] | None:
        # No index on chain_hash: a rare lookup is not worth a fifth B-tree write per receipt.
        row = self._one(
            "SELECT receipt_envelope FROM receipts WHERE tenant_id = ? AND chain_hash = ?",
            (tenant_id, chain_hash),
        )
        return json.loads(row[0]) if row else None

    def sequence_of(self, tenant_id: str, receipt_id: str) -> int | None:
        row = self._one(
            "SELECT append_sequence FROM receipts WHERE tenant_id = ? AND receipt_id = ?",
            (tenant_id, receipt_id),
        )
        return int(row[0]) if row else None

    def list(self, query: ReceiptQuery) -> ReceiptPage:
        statement, args = sql.list_sql(query, "?")
        with self._lock:
            rows = self._db.execute(statement, args).fetchall()
        items = [StoredReceipt(seq, json.loads(env)) for seq, env in rows[: query.limit]]
        return ReceiptPage(items=items, has_more=len(rows) > query.limit)

    def sessions(self, tenant_id: str, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(sql.sessions_sql("?"), (tenant_id, limit, offset)).fetchall()
        return [sql.session_row(row) for row in rows]

    def count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM receipts", ())[0])

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._checkpointer.join(5)
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
