"""PostgreSQL receipt store, selected by ``DATABASE_URL`` (the only module that imports psycopg).

Several runtime replicas may append to the same chain at once. Each write transaction:

1. takes a transaction-scoped advisory lock per chain it touches, in sorted order (so two batches
   never deadlock): chains are serialised in the database, different chains proceed in parallel;
2. reads each chain's head (then follows it within the batch) and lets the caller sign the next
   receipt; a failing builder drops only its own receipt;
3. takes one short global lock, inserts the batch and commits. ``append_sequence`` (the list
   cursor) is assigned under that lock, so receipts become visible in sequence order and a client
   paging with ``since`` never skips one that commits late on another replica.

The unique (chain, lamport) index is the backstop; a deadlock, serialization failure or unique
violation retries the whole batch with fresh heads. A receipt is durable when ``append`` returns
(``synchronous_commit`` is the server's, on by default).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from helm_runbook.formats.receipts import causal_session_key
from helm_runbook.runtime.store import sql
from helm_runbook.runtime.store.base import (
    AppendedReceipt,
    AppendJob,
    BatchAppender,
    ChainHead,
    ReceiptPage,
    ReceiptQuery,
    StoreUnavailable,
)

PRODUCTION_SSLMODES = ("require", "verify-ca", "verify-full")
# Advisory lock keys (the two-int key space never meets the chains' single bigint keys)
_SCHEMA_LOCK = (0x48454C4D, 0)  # replicas starting together create the schema once
_SCHEMA = sql.schema_sql("BIGSERIAL PRIMARY KEY", "BIGINT")
_INSERT = sql.insert_sql("%s")
_HEAD = sql.head_sql("%s")
_RETRIES = 5
_COMMIT_ORDER_LOCK = (0x48454C4D, 1)  # held from a batch's insert to its commit


def check_database_url(url: str, *, production: bool) -> dict[str, str]:
    """Parse ``DATABASE_URL``; production requires TLS (``sslmode`` require/verify-ca/verify-full)."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"DATABASE_URL is not a PostgreSQL URL or conninfo string: {exc}") from exc
    sslmode = params.get("sslmode", "prefer")
    if production and sslmode not in PRODUCTION_SSLMODES:
        raise ValueError(
            f"HELM_PRODUCTION=1 requires DATABASE_URL sslmode require, verify-ca or verify-full "
            f"(got {sslmode}); set helm.storage.postgres.sslMode or the Secret's URL"
        )
    return params


def _where(params: dict[str, str]) -> str:
    """host:port/db for messages: never the password."""
    return (
        f"{params.get('host', 'localhost')}:{params.get('port', '5432')}/{params.get('dbname', '')}"
    )


class PostgresReceiptStore(BatchAppender):
    """A connection pool sized by ``HELM_DB_*``; every call takes one connection for its duration."""

    # Commits cross the network: the group committer runs them off the event loop.
    blocking_commits = True

    def __init__(self, url: str, *, max_open: int = 25, max_idle: int = 10, max_lifetime_s: float = 1800.0,
                 production: bool = False, connect_timeout_s: float = 10.0) -> None:  # fmt: skip
        params = check_database_url(url, production=production)
        self.where = _where(params)
        # One connection first, which pings and creates the tables: a refused or failed connect
        # ends start-up at once with libpq's reason (the pool retries a refused connect until its
        # timeout, so an unreachable database took the whole ``connect_timeout_s`` to report).
        ping = url
        if "connect_timeout" not in params:
            ping = make_conninfo(url, connect_timeout=max(1, round(connect_timeout_s)))
        try:
            with psycopg.connect(ping, autocommit=True) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _SCHEMA_LOCK)
                conn.execute(_SCHEMA)
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot reach the receipt database {self.where}: {exc}"
            ) from exc
        self._pool = ConnectionPool(url, min_size=min(max_idle, max_open), max_size=max_open,
                                    max_lifetime=max_lifetime_s, timeout=connect_timeout_s,
                                    kwargs={"autocommit": True}, open=False, name="helm-receipts")  # fmt: skip
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(
                f"cannot reach the receipt database {self.where}: {exc}"
            ) from exc

    # -- writes -------------------------------------------------------------------------------

    def append_batch(self, jobs: Sequence[AppendJob]) -> list[AppendedReceipt | Exception]:
        """All jobs in one transaction; each isolated by a savepoint. Retried whole on a deadlock
        or serialization failure, so a receipt is never half-written or forked."""
        for attempt in range(_RETRIES):
            try:
                return self._append_batch_once(jobs)
            except (errors.DeadlockDetected, errors.SerializationFailure, errors.UniqueViolation):
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
            except (errors.ReadOnlySqlTransaction, errors.DiskFull) as exc:
                raise StoreUnavailable(
                    f"receipt database {self.where} cannot take writes: {exc}"
                ) from exc
            except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise StoreUnavailable(f"receipt database {self.where} unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    def _append_batch_once(self, jobs: Sequence[AppendJob]) -> list[AppendedReceipt | Exception]:
        results: list[AppendedReceipt | Exception] = []
        rows: list[tuple[Any, ...]] = []
        heads: dict[str, ChainHead] = {}
        with self._pool.connection() as conn, conn.transaction():
            for key in sorted({causal_session_key(t, s) for t, s, _ in jobs}):
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            for tenant_id, session_id, build in jobs:
                causal = causal_session_key(tenant_id, session_id)
                if causal not in heads:
                    row = conn.execute(_HEAD, (causal,)).fetchone()
                    heads[causal] = sql.head(row, causal)
                try:
                    appended = build(heads[causal])
                    insert = sql.insert_row(tenant_id, causal, session_id, appended)
                except Exception as exc:  # the builder's own failure (signing, validation, size)
                    results.append(exc)
                    continue
                heads[causal] = ChainHead(
                    int(appended.receipt["lamport_clock"]), appended.chain_hash
                )
                rows.append(insert)
                results.append(appended)
            if rows:
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _COMMIT_ORDER_LOCK)
                with conn.cursor() as cursor:
                    cursor.executemany(_INSERT, rows)
        return results

    # -- reads --------------------------------------------------------------------------------

    def _rows(self, sql: str, args: Sequence[Any]) -> builtins.list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, args).fetchall()
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(f"receipt database {self.where} unavailable: {exc}") from exc

    def get(self, tenant_id: str, receipt_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT receipt_envelope FROM receipts WHERE tenant_id = %s AND receipt_id = %s",
                          (tenant_id, receipt_id))  # fmt: skip
        return sql.envelope(rows[0][0]) if rows else None

    def get_by_chain_hash(self, tenant_id: str, chain_hash: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT receipt_envelope FROM receipts WHERE tenant_id = %s AND chain_hash = %s",
                          (tenant_id, chain_hash))  # fmt: skip
        return sql.envelope(rows[0][0]) if rows else None

    def sequence_of(self, tenant_id: str, receipt_id: str) -> int | None:
        rows = self._rows("SELECT append_sequence FROM receipts WHERE tenant_id = %s AND receipt_id = %s",
                          (tenant_id, receipt_id))  # fmt: skip
        return int(rows[0][0]) if rows else None

    def list(self, query: ReceiptQuery) -> ReceiptPage:
        statement, args = sql.list_sql(query, "%s")
        rows = self._rows(statement, args)
        return sql.list_page(rows, query.limit)

    def sessions(self, tenant_id: str, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        return sql.session_rows(self._rows(sql.sessions_sql("%s"), (tenant_id, limit, offset)))

    def count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM receipts", ())[0][0])

    def health(self) -> str:
        """'' while the server answers (its outages are StoreUnavailable, see ``_rows``)."""
        try:
            self._rows("SELECT 1", ())
        except StoreUnavailable as exc:
            return str(exc)
        return ""

    def close(self) -> None:
        self._pool.close()
