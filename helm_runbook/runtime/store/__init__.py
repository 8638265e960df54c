"""Receipt persistence: the ``ReceiptStore`` protocol and its backends."""

from __future__ import annotations

from helm_runbook.runtime.store.base import (
    ChainHead,
    ReceiptPage,
    ReceiptQuery,
    ReceiptStore,
    StoreUnavailable,
)

__all__ = ["ChainHead", "ReceiptPage", "ReceiptQuery", "ReceiptStore", "StoreUnavailable"]
