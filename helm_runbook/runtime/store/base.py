"""The store contract every backend passes (SQLite now, PostgreSQL later).

Appends are chain-safe: the backend reads the chain head, lets the caller build and sign the
receipt for the next lamport, and inserts it inside one write transaction guarded by a unique
(chain, lamport) index. A receipt is durable when ``append`` returns.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class StoreUnavailable(Exception):
    """The store cannot take the write now (disk full, read-only, database down)."""


@dataclass(frozen=True)
class ChainHead:
    """Where a chain ends: the next receipt gets ``lamport + 1`` and ``prev_hash = chain_hash``."""

    lamport: int
    chain_hash: str


@dataclass(frozen=True)
class AppendedReceipt:
    receipt: dict[str, Any]
    chain_hash: str
    timestamp_ns: int
    # The receipt's JSON text when the builder already has it (``receipts.seal_stored``); the
    # store writes it as the envelope instead of serialising the receipt again.
    text: str = ""


# Given the chain head (lamport 0 and "" for a new chain), return the signed receipt and its
# chain hash. Called inside the write transaction.
ReceiptBuilder = Callable[[ChainHead], AppendedReceipt]
# (tenant_id, session_id, builder): one receipt to append.
AppendJob = tuple[str, str, ReceiptBuilder]


@dataclass(frozen=True)
class ReceiptQuery:
    """Filters of ``GET /api/v1/receipts`` (docs/upstream-contract.md#receipt-routes); ``after_sequence`` is the cursor."""

    tenant_id: str
    limit: int = 100
    session_id: str | None = None
    after_sequence: int = 0
    after_lamport: int = 0
    verdict: str | None = None
    reason_code: str | None = None
    executor_id: str | None = None
    effect_id: str | None = None
    time_from_ns: int | None = None
    time_to_ns: int | None = None
    # The page stops before the receipt that would take it past this many envelope bytes
    # (the first receipt is always served); has_more then says there is more.
    max_bytes: int = 1 << 62


@dataclass(frozen=True)
class StoredReceipt:
    sequence: int
    receipt: dict[str, Any]


@dataclass(frozen=True)
class ReceiptPage:
    items: list[StoredReceipt]
    has_more: bool
    skipped: int = 0  # malformed rows left out of ``items``


class ReceiptStore(Protocol):
    # True when a commit crosses the network: the group committer flushes it off the event loop.
    blocking_commits: bool

    def append(self, tenant_id: str, session_id: str, build: ReceiptBuilder) -> AppendedReceipt:
        """Append the next receipt of the (tenant, session) chain; durable on return."""

    def append_batch(self, jobs: Sequence[AppendJob]) -> list[AppendedReceipt | Exception]:
        """Append several receipts in one durable transaction; per-job failures are returned."""

    def get(self, tenant_id: str, receipt_id: str) -> dict[str, Any] | None: ...

    def get_by_chain_hash(self, tenant_id: str, chain_hash: str) -> dict[str, Any] | None: ...

    def sequence_of(self, tenant_id: str, receipt_id: str) -> int | None: ...

    def list(self, query: ReceiptQuery) -> ReceiptPage: ...

    def sessions(
        self, tenant_id: str, limit: int, offset: int
    ) -> builtins.list[dict[str, Any]]: ...

    def count(self) -> int:
        """Receipts stored, all tenants (the ``helm_chain_length`` gauge starts here)."""

    def health(self) -> str:
        """'' when receipts can be read and written now; else why not (readiness fails on it)."""

    def close(self) -> None: ...


class BatchAppender:
    """``append`` as a batch of one, for stores whose unit of work is ``append_batch``."""

    blocking_commits = False

    def append_batch(self, jobs: Sequence[AppendJob]) -> list[AppendedReceipt | Exception]:
        raise NotImplementedError

    def append(self, tenant_id: str, session_id: str, build: ReceiptBuilder) -> AppendedReceipt:
        result = self.append_batch([(tenant_id, session_id, build)])[0]
        if isinstance(result, BaseException):
            raise result
        return result
