"""Receipt listing and lookup (``/api/v1/receipts``, ``/api/v1/proofgraph``): query parameters
checked to what the stores can take, opaque cursors, listings bounded in bytes."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.guardian import rfc3339_nano
from helm_runbook.runtime.handlers.common import CompactJSON, checked_id, runtime_of
from helm_runbook.runtime.limits import MAX_LISTING_BYTES
from helm_runbook.runtime.problems import ProblemError
from helm_runbook.runtime.store.base import ReceiptQuery

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also accepts "²" and "٣"


def non_negative_int(name: str, raw: str) -> int:
    """A query integer the stores can take (0..2^63-1), or a 400 naming the parameter."""
    if not _DIGITS.fullmatch(raw) or int(raw) > _INT64_MAX:
        raise ProblemError(400, f"{name} must be an integer from 0 to {_INT64_MAX}")
    return int(raw)


def _int_param(request: Request, name: str, default: int, *, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = non_negative_int(name, raw)
    return min(value, maximum) if maximum is not None else value


# Receipt times are int64 nanoseconds: 1677-09-21T00:12:43.145224192Z .. 2262-04-11T23:47:16.854775807Z.
_TIME_NS_RANGE = (-(2**63), 2**63 - 1)


def parse_time_ns(name: str, raw: str) -> int:
    """RFC3339Nano with at most nine fraction digits (comma separators rejected) → epoch ns."""
    m = _RFC3339.match(raw)
    if not m:
        raise ProblemError(
            400, f"{name} must be an RFC3339 timestamp such as 2026-01-02T03:04:05.123Z"
        )
    base, frac, zone = m.groups()
    try:
        dt = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
        ns = int(dt.timestamp()) * 1_000_000_000 + int((frac or "").ljust(9, "0") or 0)
    except (ValueError, OverflowError) as exc:
        raise ProblemError(400, f"{name}: {exc}") from exc
    if not _TIME_NS_RANGE[0] <= ns <= _TIME_NS_RANGE[1]:
        raise ProblemError(
            400, f"{name} must lie between 1677-09-21 and 2262-04-11 (int64 nanoseconds)"
        )
    return ns


def encode_cursor(receipt: dict[str, Any]) -> str:
    raw = json.dumps(
        {"l": receipt["lamport_clock"], "t": receipt["timestamp"], "r": receipt["receipt_id"]},
        separators=(",", ":"),
    ).encode()
    return "v1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The receipt id an opaque ``v1.`` cursor points at."""
    try:
        payload = cursor[3:]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        receipt_id = data["r"]
        if not isinstance(receipt_id, str):
            raise TypeError
        return receipt_id
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ProblemError(
            400, "since is not a valid cursor (use next_cursor from a previous page)"
        ) from exc


async def list_receipts(request: Request, identity: Identity) -> Response:
    """``GET /api/v1/receipts``: oldest first, ``limit``, ``session_id``, ``since`` cursor, filters."""
    runtime = runtime_of(request)
    q = request.query_params
    limit = _int_param(request, "limit", 100, maximum=1000) or 100
    session_id = q.get("session_id") or q.get("agent") or None
    if session_id is not None:
        checked_id("session_id", session_id, session=True)
    filters = {name: q.get(name) or None for name in
               ("verdict", "reason_code", "principal", "executor", "effect", "resource")}  # fmt: skip
    for name, value in filters.items():
        if value is not None:
            checked_id(name, value)
    since = q.get("since", "")
    after_sequence = after_lamport = 0
    if since.startswith("lamport:"):
        if session_id is None:
            raise ProblemError(
                400, "since=lamport:<n> needs session_id; use next_cursor for tenant-wide listing"
            )
        after_lamport = non_negative_int("since=lamport:<n>", since[len("lamport:") :])
    elif since.startswith("v1."):
        seq = runtime.store.sequence_of(identity.tenant_id, decode_cursor(since))
        if seq is None:
            raise ProblemError(400, "since cursor points at a receipt this tenant does not have")
        after_sequence = seq
    elif since:
        raise ProblemError(400, "since must be lamport:<n> or a v1. cursor from next_cursor")
    query = ReceiptQuery(
        tenant_id=identity.tenant_id,
        limit=limit,
        session_id=session_id,
        after_sequence=after_sequence,
        after_lamport=after_lamport,
        verdict=filters["verdict"],
        reason_code=filters["reason_code"],
        executor_id=filters["principal"] or filters["executor"],
        effect_id=filters["effect"] or filters["resource"],
        time_from_ns=parse_time_ns("from", q["from"]) if q.get("from") else None,
        time_to_ns=parse_time_ns("to", q["to"]) if q.get("to") else None,
        max_bytes=MAX_LISTING_BYTES,
    )
    page = runtime.store.list(query)
    receipts = [item.receipt for item in page.items]
    next_cursor = ""
    if receipts:
        last = receipts[-1]
        next_cursor = f"lamport:{last['lamport_clock']}" if session_id else encode_cursor(last)
    return CompactJSON(
        {
            "receipts": receipts,
            "count": len(receipts),
            "next_cursor": next_cursor,
            "has_more": page.has_more,
            "skipped": page.skipped,
        }
    )


async def get_receipt(request: Request, identity: Identity) -> Response:
    receipt = runtime_of(request).store.get(identity.tenant_id, request.path_params["receipt_id"])
    if receipt is None:
        raise ProblemError(404, "Receipt not found")
    return CompactJSON(receipt)


async def proofgraph_sessions(request: Request, identity: Identity) -> Response:
    limit = _int_param(request, "limit", 50, maximum=1000) or 50
    offset = _int_param(request, "offset", 0)
    rows = runtime_of(request).store.sessions(identity.tenant_id, limit, offset)
    return CompactJSON(
        [
            {
                "session_id": row["session_id"],
                "created_at": rfc3339_nano(row["created_at_ns"]),
                "receipt_count": row["receipt_count"],
                "last_lamport_clock": row["last_lamport_clock"],
            }
            for row in rows
        ]
    )


async def proofgraph_session_receipts(request: Request, identity: Identity) -> Response:
    session_id = checked_id("session_id", request.path_params["session_id"], session=True)
    store = runtime_of(request).store
    receipts: list[dict[str, Any]] = []
    after, budget = 0, MAX_LISTING_BYTES
    while True:  # bounded: each page advances the lamport cursor and spends the byte budget
        page = store.list(
            ReceiptQuery(identity.tenant_id, limit=1000, session_id=session_id,
                         after_lamport=after, max_bytes=budget)
        )  # fmt: skip
        receipts.extend(item.receipt for item in page.items)
        budget -= sum(len(json.dumps(item.receipt)) for item in page.items)
        if not page.has_more:
            break
        if budget <= 0:
            raise ProblemError(
                413,
                f"Session receipts exceed {MAX_LISTING_BYTES} bytes: page through "
                f"GET /api/v1/receipts?session_id={session_id} instead",
            )
        after = receipts[-1]["lamport_clock"]
    if not receipts:
        raise ProblemError(404, "Session not found")
    return CompactJSON(receipts)


async def proofgraph_receipt(request: Request, identity: Identity) -> Response:
    receipt_hash = request.path_params["receipt_hash"].removeprefix("sha256:").lower()
    receipt = runtime_of(request).store.get_by_chain_hash(identity.tenant_id, receipt_hash)
    if receipt is None:
        raise ProblemError(404, "Receipt not found")
    return CompactJSON(receipt)
