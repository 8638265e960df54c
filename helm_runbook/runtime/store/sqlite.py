"""SQLite receipt store: ``<data-dir>/helm.db`` in WAL mode (docs/upstream-contract.md#data-dir).

Durability: WAL with ``synchronous=NORMAL`` makes a committed receipt survive the process being
killed (SIGKILL, OOM); ``HELM_SQLITE_SYNCHRONOUS=FULL`` also survives power loss at the cost of
an fsync per receipt. Checkpoints (copying the WAL back into the database, with fsyncs) run on a
background thread instead of inside whichever request crosses the WAL threshold, which keeps
them off the request path's tail latency; past ``WAL_RESET_FRAMES`` (about 64 MiB) that thread
holds this process's writers for its last pass (about 10 ms here) so the WAL starts over: under
sustained writes it grew without end. Chains are serialised by ``BEGIN IMMEDIATE`` (one writer across processes)
and the unique (causal_session_id, lamport_clock) index.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from helm_runbook.formats.receipts import causal_session_key
from helm_runbook.runtime.store import sql
from helm_runbook.runtime.store.base import (
    AppendedReceipt,
    AppendJob,
    BatchAppender,
    ReceiptBuilder,
    ReceiptPage,
    ReceiptQuery,
    StoreUnavailable,
)

_SCHEMA = sql.schema_sql("INTEGER PRIMARY KEY", "INTEGER")
_INSERT = sql.insert_sql("?")
_HEAD = sql.head_sql("?")
# SQLite primary result codes (``sqlite_errorcode & 0xFF``) that mean the store is not usable.
_CORRUPT = {11: "malformed (SQLITE_CORRUPT)", 26: "not a database (SQLITE_NOTADB)"}
_UNWRITABLE = {
    8: "read-only (SQLITE_READONLY)",
    10: "failing I/O (SQLITE_IOERR)",
    13: "full (SQLITE_FULL)",
    14: "unopenable (SQLITE_CANTOPEN)",
}
STORE_FAULT_HOLD_S = 10.0  # readiness stays failed this long after a write hit an unwritable store
HEALTH_CACHE_S = 1.0  # a public /health answered from the last probe within this window
_PROBE_BUSY_TIMEOUT_MS = 500
# WAL frames (4 KiB pages) past which the checkpointer makes the WAL start over: about 64 MiB.
WAL_RESET_FRAMES = 16384


def _primary_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _owner_only(path: Path) -> None:
    """``helm.db`` and its ``-wal``/``-shm`` readable by the runtime's user only (0600), whatever
    the umask: created so before SQLite opens it (SQLite gives the WAL and SHM files the
    database file's mode), and narrowed if an older start left them wider."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


class SQLiteReceiptStore(BatchAppender):
    """One connection, one writer lock per process; other processes wait on SQLite's lock."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        checkpoint_interval_s: float = 0.5,
        wal_reset_frames: int = WAL_RESET_FRAMES,
    ):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.path = path
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._wal_reset_frames = wal_reset_frames
        self._lock = threading.Lock()
        _owner_only(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
            self._db.executescript(_SCHEMA)
            # A page read by no query yet is found here, not by a request (reads every page once).
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error, AttributeError):
                self._db.close()
            raise StoreUnavailable(
                f"cannot open receipt database {path}: {_first_line(str(exc))} (restore it from a "
                "backup or move it aside; a new empty database starts a new chain)"
            ) from exc
        if problems != ["ok"]:
            self._db.close()
            raise StoreUnavailable(
                f"receipt database {path} is malformed: {_first_line(problems[0])} "
                f"({len(problems)} problems found by quick_check; restore it from a backup or "
                "move it aside)"
            )
        self._corrupt = ""  # sticky: a malformed database does not heal
        self._unwritable_at, self._unwritable = 0.0, ""
        self._health_cache: tuple[float, str] = (0.0, "")
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(checkpoint_interval_s, busy_timeout_ms),
            name="sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval_s: float, busy_timeout_ms: int) -> None:
        """PASSIVE checkpoints on a connection of their own, which do not block writers.

        Under sustained writes a PASSIVE checkpoint never catches up (each commit adds frames
        while it copies), and the WAL only starts over once every frame is copied: it grew
        without end (500 MiB after 20,000 sequential receipts), and so did the WAL index every
        page read searches. Past ``wal_reset_frames`` the loop copies the few frames left with
        this process's writers held at the store lock; the next commit then rewrites the WAL
        from its start."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        try:
            while not self._closed.wait(interval_s):
                with contextlib.suppress(sqlite3.Error):
                    _busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > self._wal_reset_frames:
                        # Again while writers go on (it copies what came during the first),
                        # then the last few frames with this process's writers held.
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        with self._lock:
                            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def append_batch(self, jobs: Sequence[AppendJob]) -> list[AppendedReceipt | Exception]:
        """Append several receipts in ONE transaction (group commit); each job is isolated by a
        savepoint, so one failing builder rolls back only its own receipt."""
        results: list[AppendedReceipt | Exception] = []
        with self._lock:
            if self._corrupt:
                raise StoreUnavailable(f"receipt database is {self._corrupt}")
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._note(exc)
                raise StoreUnavailable(f"receipt database is not writable: {exc}") from exc
            # Savepoints isolate the jobs of a batch; a batch of one (every request when they
            # come one at a time) needs none: its failure rolls the transaction back.
            isolate = len(jobs) > 1
            try:
                for tenant_id, session_id, build in jobs:
                    if isolate:
                        db.execute("SAVEPOINT job")
                    try:
                        appended = self._append_one(tenant_id, session_id, build)
                    except sqlite3.Error as exc:
                        if not isinstance(exc, sqlite3.IntegrityError):
                            # A storage failure (full, read-only, I/O): SQLite may already have
                            # rolled the whole transaction back, so the whole batch fails.
                            raise
                        self._drop_job(isolate)
                        results.append(exc)
                    except Exception as exc:  # the builder's own failure: only its receipt goes
                        self._drop_job(isolate)
                        results.append(exc)
                    else:
                        if isolate:
                            db.execute("RELEASE job")
                        results.append(appended)
                if isolate or not results or not isinstance(results[0], Exception):
                    db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    self._note(exc)
                    raise StoreUnavailable(f"receipt write failed: {exc}") from exc
                raise
        return results

    def _drop_job(self, isolated: bool) -> None:
        """Undo the job that failed: back to its savepoint, or the whole one-job transaction."""
        if isolated:
            self._db.execute("ROLLBACK TO job")
            self._db.execute("RELEASE job")
        else:
            self._db.execute("ROLLBACK")

    def _note(self, exc: sqlite3.Error) -> None:
        """Remember a failure that makes the store unusable (readiness reports it)."""
        code = _primary_code(exc)
        if code in _CORRUPT:
            self._corrupt = _CORRUPT[code]
        elif code in _UNWRITABLE:
            self._unwritable_at, self._unwritable = time.monotonic(), _UNWRITABLE[code]

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; a storage failure is StoreUnavailable (503), not a 500."""
        with self._lock:
            if self._corrupt:
                raise StoreUnavailable(f"receipt database is {self._corrupt}")
            try:
                yield self._db
            except sqlite3.Error as exc:
                self._note(exc)
                raise StoreUnavailable(f"receipt read failed: {exc}") from exc

    def health(self) -> str:
        """'' when the store can be read and written; else why not (for readiness). Probes at
        most once per HEALTH_CACHE_S: a read of the newest receipt and an empty write transaction."""
        now = time.monotonic()
        checked_at, verdict = self._health_cache
        if now - checked_at < HEALTH_CACHE_S:
            return verdict
        verdict = self._probe(now)
        self._health_cache = (now, verdict)
        return verdict

    def _probe(self, now: float) -> str:
        if self._unwritable and now - self._unwritable_at < STORE_FAULT_HOLD_S:
            return f"receipt database is {self._unwritable}"
        if not self._lock.acquire(blocking=False):
            # A commit or read is running: probes never wait on it (the health port answers
            # from its own thread); the last verdict stands until the next probe.
            return self._health_cache[1]
        try:
            return self._probe_locked()
        finally:
            self._lock.release()

    def _probe_locked(self) -> str:
        if self._corrupt:
            return f"receipt database is {self._corrupt}"
        db = self._db
        try:
            db.execute(
                "SELECT append_sequence FROM receipts ORDER BY append_sequence DESC LIMIT 1"
            ).fetchall()
            db.execute(f"PRAGMA busy_timeout = {_PROBE_BUSY_TIMEOUT_MS}")
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            finally:
                db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        except sqlite3.Error as exc:
            code = _primary_code(exc)
            if code == 5:  # SQLITE_BUSY: another process is writing, which is no fault
                return ""
            self._note(exc)
            label = _CORRUPT.get(code) or _UNWRITABLE.get(code) or "failing"
            return f"receipt database is {label}: {exc}"
        return ""

    def _append_one(
        self, tenant_id: str, session_id: str, build: ReceiptBuilder
    ) -> AppendedReceipt:
        causal = causal_session_key(tenant_id, session_id)
        row = self._db.execute(_HEAD, (causal,)).fetchone()
        appended = build(sql.head(row, causal))
        self._db.execute(_INSERT, sql.insert_row(tenant_id, causal, session_id, appended))
        return appended

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._reading() as db:
            return db.execute(sql, args).fetchone()

    def get(self, tenant_id: str, receipt_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT receipt_envelope FROM receipts WHERE tenant_id = ? AND receipt_id = ?",
            (tenant_id, receipt_id),
        )
        return sql.envelope(row[0]) if row else None

    def get_by_chain_hash(self, tenant_id: str, chain_hash: str) -> dict[str, Any] | None:
        # No index on chain_hash: a rare lookup is not worth a fifth B-tree write per receipt.
        row = self._one(
            "SELECT receipt_envelope FROM receipts WHERE tenant_id = ? AND chain_hash = ?",
            (tenant_id, chain_hash),
        )
        return sql.envelope(row[0]) if row else None

    def sequence_of(self, tenant_id: str, receipt_id: str) -> int | None:
        row = self._one(
            "SELECT append_sequence FROM receipts WHERE tenant_id = ? AND receipt_id = ?",
            (tenant_id, receipt_id),
        )
        return int(row[0]) if row else None

    def list(self, query: ReceiptQuery) -> ReceiptPage:
        statement, args = sql.list_sql(query, "?")
        with self._reading() as db:
            rows = db.execute(statement, args).fetchall()
        return sql.list_page(rows, query.limit)

    def sessions(self, tenant_id: str, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        with self._reading() as db:
            rows = db.execute(sql.sessions_sql("?"), (tenant_id, limit, offset)).fetchall()
        return sql.session_rows(rows)

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
