"""HTTP handlers: parse → service call → response. No SQL, no env reads (those live elsewhere).

Each handler receives the request and the authorised ``Identity``; it raises ``ProblemError``
for client mistakes. Shapes follow ``runtime/openapi.yaml``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import platform
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from helm_runbook.formats.evidence import MAX_PACK_BYTES, MAX_RECEIPTS, build_pack
from helm_runbook.runtime import KERNEL_VERSION, evidence
from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.guardian import rfc3339_nano
from helm_runbook.runtime.json_reader import parse_json
from helm_runbook.runtime.limits import (
    MAX_LISTING_BYTES,
    MAX_MULTIPART_FIELD_BYTES,
    MAX_MULTIPART_FIELDS,
    MAX_MULTIPART_FILES,
)
from helm_runbook.runtime.policy.reconciler import log_reconcile
from helm_runbook.runtime.problems import ProblemError
from helm_runbook.runtime.store.base import ReceiptQuery

if TYPE_CHECKING:
    from helm_runbook.runtime.context import Runtime

_AUTHORITY_KEYS = ("principal", "principal_id", "tenant", "tenant_id", "workspace", "workspace_id")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class CompactJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- health and version -------------------------------------------------------------------


async def _not_ready(request: Request) -> str:
    """Why the runtime cannot serve now ('' when it can): the receipt store's health, probed in
    a thread (it takes the store's lock) so a slow store never stalls the probe loop."""
    check = getattr(request.app.state, "readiness", None)
    return str(await asyncio.to_thread(check)) if check is not None else ""


async def plain_ok(request: Request, identity: Identity) -> Response:
    """``/health`` on the API port (docs/upstream-contract.md#d1) and both health-port routes: plain ``OK``, or
    503 naming the fault while the receipt store is malformed or unwritable (readiness)."""
    why = await _not_ready(request)
    if why:
        return PlainTextResponse(f"NOT READY: {why}", status_code=503)
    return PlainTextResponse("OK")


async def healthz(request: Request, identity: Identity) -> Response:
    why = await _not_ready(request)
    if why:
        return CompactJSON(
            {"status": "unavailable", "version": KERNEL_VERSION, "reason": why}, status_code=503
        )
    return CompactJSON({"status": "ok", "version": KERNEL_VERSION})


async def api_health(request: Request, identity: Identity) -> Response:
    runtime = _runtime(request)
    return CompactJSON(
        {
            "version": KERNEL_VERSION,
            "commit": "reference-runtime",
            "helm_ai_kernel_version": KERNEL_VERSION,
            "status": "ok",
            "build_time": "",
            "git_sha": "reference-runtime",
            "deployment_id": runtime.settings.deployment_id,
        }
    )


async def version(request: Request, identity: Identity) -> Response:
    return CompactJSON(
        {
            "version": KERNEL_VERSION,
            "commit": "reference-runtime",
            "build_time": "",
            "go_version": f"python{platform.python_version()} (helm-runbook reference runtime)",
        }
    )


# -- evaluate -----------------------------------------------------------------------------


_PARSE_OFF_LOOP_BYTES = 256 << 10  # bigger bodies parse in a thread: health probes keep answering


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body (already read under the route's byte cap) as a JSON object, or a 400 problem
    naming what is wrong."""
    body = await request.body()
    try:
        if len(body) > _PARSE_OFF_LOOP_BYTES:
            value = await asyncio.to_thread(parse_json, body)
        else:
            value = parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise ProblemError(400, "Invalid JSON body: expected an object")
    return value


def _one_of(*spellings: tuple[str, Any]) -> str:
    """One value from several spellings; they may all be present only when they match after trimming."""
    values = []
    for name, value in spellings:
        if value is None:
            continue
        if not isinstance(value, str):
            raise ProblemError(400, f"Evaluate route {name} must be a string")
        if value.strip():
            values.append((name, value.strip()))
    if len({v for _, v in values}) > 1:
        names = " and ".join(n for n, _ in values)
        raise ProblemError(400, f"Evaluate route {names} conflict")
    return values[0][1] if values else ""


def valid_session_id(session_id: str) -> bool:
    return bool(session_id.strip()) and not any(c in session_id for c in "/\\\x00")


async def evaluate(request: Request, identity: Identity) -> Response:
    """``POST /api/v1/evaluate``: decide, persist the signed receipt, then answer (docs/upstream-contract.md#evaluate)."""
    runtime = _runtime(request)
    body = await read_json_object(request)
    context = body.get("context", {})
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise ProblemError(400, "Evaluate route context must be an object")
    tool = _one_of(("tool", body.get("tool")), ("action", body.get("action")))
    effect_level = _one_of(
        ("effect_level", body.get("effect_level")), ("resource", body.get("resource"))
    )
    if not tool or not effect_level:
        raise ProblemError(400, "Evaluate route tool and effect_level are required")
    session_id = _one_of(
        ("session_id", body.get("session_id")), ("context.session_id", context.get("session_id"))
    )
    if not session_id:
        raise ProblemError(
            400, "Evaluate route session_id is required (top level or context.session_id)"
        )
    if not valid_session_id(session_id):
        raise ProblemError(400, "Evaluate route session_id must not contain '/', '\\' or NUL")
    args = body.get("args")
    if args is not None and not isinstance(args, dict):
        raise ProblemError(400, "Evaluate route args must be an object")
    decision_context = {k: v for k, v in context.items() if k not in _AUTHORITY_KEYS}
    decision_context.update(
        principal_id=identity.principal_id,
        tenant_id=identity.tenant_id,
        session_id=session_id,
        args=args if args is not None else {},
    )
    workspace = request.headers.get("x-helm-workspace-id")
    if workspace:
        decision_context["workspace_id"] = workspace
    try:
        result = await runtime.kernel.evaluate_async(
            tenant_id=identity.tenant_id,
            principal=identity.principal_id,
            session_id=session_id,
            action=tool,
            resource=effect_level,
            args=args,
            context=decision_context,
        )
    except (TypeError, ValueError) as exc:  # canonicalisation: e.g. integers beyond 2^53
        raise ProblemError(400, f"Evaluate route args cannot be canonicalised: {exc}") from exc
    decision, receipt = result.decision, result.receipt
    return CompactJSON(
        {
            "allow": decision.allow,
            "verdict": decision.verdict,
            "receipt_id": receipt["receipt_id"],
            "decision_id": decision.id,
            "decision_hash": result.decision_hash,
            "reason_code": decision.reason_code,
            "policy_ref": decision.policy_hash,
            "lamport_clock": receipt["lamport_clock"],
            "id": decision.id,
            "action": decision.action,
            "resource": decision.resource,
            "reason": decision.reason,
            "policy_version": decision.policy_hash,
            "signature": result.decision_signature,
        }
    )


# -- receipts -----------------------------------------------------------------------------


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
    runtime = _runtime(request)
    q = request.query_params
    limit = _int_param(request, "limit", 100, maximum=1000) or 100
    session_id = q.get("session_id") or q.get("agent") or None
    if session_id is not None and not valid_session_id(session_id):
        raise ProblemError(400, "session_id must not be blank or contain '/', '\\' or NUL")
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
        verdict=q.get("verdict") or None,
        reason_code=q.get("reason_code") or None,
        executor_id=q.get("principal") or q.get("executor") or None,
        effect_id=q.get("effect") or q.get("resource") or None,
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
        }
    )


async def get_receipt(request: Request, identity: Identity) -> Response:
    receipt = _runtime(request).store.get(identity.tenant_id, request.path_params["receipt_id"])
    if receipt is None:
        raise ProblemError(404, "Receipt not found")
    return CompactJSON(receipt)


async def proofgraph_sessions(request: Request, identity: Identity) -> Response:
    limit = _int_param(request, "limit", 50, maximum=1000) or 50
    offset = _int_param(request, "offset", 0)
    rows = _runtime(request).store.sessions(identity.tenant_id, limit, offset)
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
    session_id = request.path_params["session_id"]
    if not valid_session_id(session_id):
        raise ProblemError(400, "session_id must not be blank or contain '/', '\\' or NUL")
    store = _runtime(request).store
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
    receipt = _runtime(request).store.get_by_chain_hash(identity.tenant_id, receipt_hash)
    if receipt is None:
        raise ProblemError(404, "Receipt not found")
    return CompactJSON(receipt)


# -- policy -------------------------------------------------------------------------------


async def policy_reconcile(request: Request, identity: Identity) -> Response:
    """``POST /internal/policy/reconcile``: a wake hint. It carries no policy bytes; it only runs
    one reconcile now, and answers 200 with the status even when the reconcile failed."""
    if await request.body():
        raise ProblemError(
            400, "Wake hints carry no body: policy bytes come only from the configured source"
        )
    runtime = _runtime(request)
    status = await asyncio.to_thread(runtime.reconciler.reconcile, runtime.scope)
    if status["reconcile_status"] != "no_change":
        log_reconcile(status, trigger="wake")
    return CompactJSON(status)


# -- evidence -----------------------------------------------------------------------------


def _collect(
    runtime: Runtime, tenant_id: str, session_id: str | None, cap: int
) -> list[dict[str, Any]]:
    """Receipts of a session (or the tenant), oldest first, at most ``cap + 1``."""
    out: list[dict[str, Any]] = []
    after = 0
    while len(out) <= cap:
        page = runtime.store.list(
            ReceiptQuery(tenant_id, limit=1000, session_id=session_id, after_sequence=after)
        )
        out.extend(item.receipt for item in page.items)
        if not page.has_more or not page.items:
            break
        after = page.items[-1].sequence
    return out


async def evidence_export(request: Request, identity: Identity) -> Response:
    """``POST /api/v1/evidence/export``: a sealed tar.gz of the session's (or tenant's) receipts."""
    runtime = _runtime(request)
    body = await read_json_object(request) if await request.body() else {}
    fmt = body.get("format", "tar.gz")
    if fmt != "tar.gz":
        raise ProblemError(400, f"format {fmt!r} is not supported; use tar.gz")
    session_id = body.get("session_id") or None
    if session_id is not None and (
        not isinstance(session_id, str) or not valid_session_id(session_id)
    ):
        raise ProblemError(400, "session_id must be a string without '/', '\\' or NUL")
    receipts = _collect(runtime, identity.tenant_id, session_id, MAX_RECEIPTS)
    if not receipts:
        raise ProblemError(
            409, "No receipts to export" + (f" for session {session_id}" if session_id else "")
        )
    if len(receipts) > MAX_RECEIPTS:
        raise ProblemError(413, f"More than {MAX_RECEIPTS} receipts: export one session at a time")
    pack, digest = build_pack(
        receipts,
        session_id=session_id or "",
        receipt_public_key=runtime.signer.public_key_hex,
        evidence_signer=runtime.evidence_signer,
    )
    name = f"evidence-{session_id or identity.tenant_id}.tar.gz"
    return Response(
        pack,
        media_type="application/octet-stream",
        headers={
            "X-Helm-Evidence-Hash": digest,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


async def _pack_from(request: Request) -> bytes:
    """The archive: the raw body, or the multipart field ``bundle``; at most 32 MiB."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_PACK_BYTES + (1 << 20):
        raise ProblemError(413, f"Evidence pack exceeds {MAX_PACK_BYTES} bytes")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(
            max_files=MAX_MULTIPART_FILES,
            max_fields=MAX_MULTIPART_FIELDS,
            max_part_size=MAX_MULTIPART_FIELD_BYTES,  # text fields; the file is bounded by the route
        ) as form:
            part = form.get("bundle")
            if part is None or isinstance(part, str):
                raise ProblemError(400, "multipart body needs a file field named 'bundle'")
            data = await part.read()
    else:
        data = await request.body()
    if not data:
        raise ProblemError(400, "Empty body: send the tar.gz from /api/v1/evidence/export")
    if len(data) > MAX_PACK_BYTES:
        raise ProblemError(413, f"Evidence pack exceeds {MAX_PACK_BYTES} bytes")
    return data


async def _verify_response(runtime: Runtime, pack: bytes, *, replay: bool) -> Response:
    try:
        result = await runtime.verify_workers.verify(
            pack,
            receipt_public_key=runtime.signer.public_key_hex,
            evidence_public_key=runtime.evidence_signer.public_key_hex,
            replay=replay,
        )
    except evidence.VerifierBusy as exc:
        raise ProblemError(
            503, f"Evidence verification is at capacity ({exc}): retry", {"Retry-After": "1"}
        ) from exc
    if runtime.metrics is not None:
        runtime.metrics.verifications.inc()
    doc = result.as_json()
    doc["verified"] = doc["verdict"] == "PASS"
    return CompactJSON(doc)


async def evidence_verify(request: Request, identity: Identity) -> Response:
    return await _verify_response(_runtime(request), await _pack_from(request), replay=False)


async def replay_verify(request: Request, identity: Identity) -> Response:
    return await _verify_response(_runtime(request), await _pack_from(request), replay=True)
