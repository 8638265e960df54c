"""Evidence packs: export a sealed tar.gz of receipts, verify or replay-verify one (in the
verifier workers, off the event loop)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from helm_runbook.formats.evidence import MAX_PACK_BYTES, MAX_RECEIPTS, build_pack
from helm_runbook.runtime import evidence
from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.handlers.common import (
    CompactJSON,
    checked_id,
    read_json_object,
    runtime_of,
)
from helm_runbook.runtime.limits import (
    MAX_MULTIPART_FIELD_BYTES,
    MAX_MULTIPART_FIELDS,
    MAX_MULTIPART_FILES,
)
from helm_runbook.runtime.problems import ProblemError
from helm_runbook.runtime.store.base import ReceiptQuery

if TYPE_CHECKING:
    from helm_runbook.runtime.context import Runtime


def _collect(
    runtime: Runtime, tenant_id: str, session_id: str | None, cap: int
) -> tuple[list[dict[str, Any]], int]:
    """Receipts of a session (or the tenant), oldest first, at most ``cap + 1``, and how many
    malformed stored rows were left out."""
    out: list[dict[str, Any]] = []
    after = skipped = 0
    while len(out) <= cap:
        page = runtime.store.list(
            ReceiptQuery(tenant_id, limit=1000, session_id=session_id, after_sequence=after)
        )
        out.extend(item.receipt for item in page.items)
        skipped += page.skipped
        if not page.has_more or not page.items:
            break
        after = page.items[-1].sequence
    return out, skipped


def attachment(filename: str) -> str:
    """``Content-Disposition`` for a name built from caller input (RFC 6266): a plain
    ``filename`` of safe characters only, and the exact name as ``filename*`` (RFC 8187)."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:200] or "download"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def evidence_export(request: Request, identity: Identity) -> Response:
    """``POST /api/v1/evidence/export``: a sealed tar.gz of the session's (or tenant's) receipts."""
    runtime = runtime_of(request)
    body = await read_json_object(request) if await request.body() else {}
    fmt = body.get("format", "tar.gz")
    if fmt != "tar.gz":
        raise ProblemError(400, f"format {fmt!r} is not supported; use tar.gz")
    session_id = body.get("session_id") or None
    if session_id is not None:
        session_id = checked_id("session_id", session_id, session=True)
    receipts, skipped = _collect(runtime, identity.tenant_id, session_id, MAX_RECEIPTS)
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
            "X-Helm-Receipts-Skipped": str(skipped),  # malformed stored rows left out
            "Content-Disposition": attachment(name),
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
    return await _verify_response(runtime_of(request), await _pack_from(request), replay=False)


async def replay_verify(request: Request, identity: Identity) -> Response:
    return await _verify_response(runtime_of(request), await _pack_from(request), replay=True)
