"""The governed OpenAI-compatible proxy: ``POST /v1/chat/completions`` (docs/upstream-contract.md#proxy, #d2, #d3, #d4).

Every request is decided as ``LLM_INFERENCE`` on resource = model, and its receipt is durable in
the runtime's tenant scope **before** the upstream is called. The route takes no HELM credential,
so its receipts name the caller ``anonymous`` (an ``X-Helm-Principal`` claim is kept, unverified,
as ``metadata.claimed_principal``) and its sessions are namespaced by the caller's address
(``anon:<address>:<session>``): an anonymous caller never appends to a chain it does not own
(docs/upstream-contract.md#d4). Only an ALLOW is forwarded; the
upstream's status and body (or SSE stream, chunk by chunk) are relayed with the HELM headers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.handlers.common import checked_id, read_json_object
from helm_runbook.runtime.limits import (
    ANONYMOUS_RECEIPT_BUDGET_EXCEEDED,
    MAX_UPSTREAM_RESPONSE_BYTES,
)
from helm_runbook.runtime.problems import ProblemError, problem
from helm_runbook.runtime.upstream import UpstreamError, UpstreamResponse, UpstreamTooLarge

if TYPE_CHECKING:
    from helm_runbook.runtime.context import Runtime

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "server",
        "date",
    }
)


def upstream_endpoint(base: str) -> str:
    """``https://x/v1`` and ``https://x`` both reach ``https://x/v1/chat/completions`` (docs/upstream-contract.md#d3)."""
    base = base.rstrip("/")
    return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")


def openai_error(
    status: int, message: str, error_type: str, code: str, headers: dict[str, str]
) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "code": code}},
        status_code=status,
        headers=headers,
    )


_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def header_safe(value: str) -> str:
    """A client-chosen string as an HTTP header value: printable ASCII kept, the rest %-encoded."""
    return quote(value, safe=_HEADER_SAFE)[:256]


ANONYMOUS = "anonymous"


def anonymous_session(request: Request, body: dict[str, object], claimed: str) -> str:
    """The chain an anonymous call appends to: the session it names (``session_id``, else
    ``X-Helm-Agent`` / ``X-Agent-ID``, else its claimed principal, else ``default``) inside its
    address's namespace, so no caller reaches a session another address or an authenticated
    caller writes. Behind a proxy every caller shares the proxy's address: bound callers to
    sessions of their own by authenticating them at the proxy."""
    named = body.get("session_id")
    header = request.headers.get("x-helm-agent") or request.headers.get("x-agent-id")
    if named is not None:
        name = checked_id("session_id", named, session=True)
    elif header:
        name = checked_id("X-Helm-Agent", header, session=True)
    else:
        name = claimed or "default"
    address = request.client.host if request.client else "unknown"
    return checked_id(
        "session_id (anon:<address>:<session>)", f"anon:{address}:{name}", session=True
    )


async def chat_completions(request: Request, identity: Identity) -> Response:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.openai_proxy_enabled:  # the flag is honoured (docs/upstream-contract.md#d2)
        raise ProblemError(
            404,
            "OpenAI-compatible proxy is disabled: set HELM_ENABLE_OPENAI_PROXY=1 (helm.proxy.enabled)",
        )
    body = await read_json_object(request)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ProblemError(400, "Chat completion request requires a non-empty model")
    checked_id("model", model)
    claimed = request.headers.get("x-helm-principal") or ""
    if claimed:
        checked_id("X-Helm-Principal", claimed)
    session = anonymous_session(request, body, claimed)
    budget = runtime.anonymous_receipts
    address = request.client.host if request.client else "unknown"
    if budget is not None and (reason := budget.check("addr:" + address)) is not None:
        raise ProblemError(
            429,
            f"{ANONYMOUS_RECEIPT_BUDGET_EXCEEDED} ({reason}): anonymous calls write at most "
            f"HELM_ANONYMOUS_RECEIPTS_PER_MINUTE receipts a minute per address and "
            "HELM_ANONYMOUS_RECEIPTS_PER_MINUTE_TOTAL in all; nothing was written",
            headers={"Retry-After": "5", "X-Helm-Limiter-Reason": ANONYMOUS_RECEIPT_BUDGET_EXCEEDED},
        )  # fmt: skip
    result = await runtime.kernel.evaluate_async(
        tenant_id=settings.tenant_id,  # proxy receipts live in the runtime's tenant scope (docs/upstream-contract.md#d4)
        principal=ANONYMOUS,
        session_id=session,
        action="LLM_INFERENCE",
        resource=model,
        args=body,
        context=body,
        source="api.openai_proxy",
        claimed_principal=claimed,
    )
    decision = result.decision
    headers = {
        "X-Helm-Decision-ID": decision.id,
        "X-Helm-Verdict": decision.verdict,
        "X-Helm-Policy-Version": decision.policy_hash,
        "X-Helm-Receipt-ID": result.receipt["receipt_id"],
    }
    if not decision.allow:
        return problem(
            403,
            decision.reason,
            title="Governance Blocked",
            instance=request.url.path,
            headers=headers,
        )
    if not settings.upstream_url:
        return openai_error(
            503,
            "No upstream configured: set HELM_UPSTREAM_URL (helm.proxy.upstream)",
            "helm_configuration_error",
            "upstream_not_configured",
            headers,
        )
    headers["X-HELM-Governed"] = "true"
    headers["X-HELM-Model"] = header_safe(model)
    forward = {"Content-Type": "application/json"}
    if "authorization" in request.headers:
        forward["Authorization"] = request.headers["authorization"]
    try:
        upstream = await runtime.upstream_client()
        response = await upstream.post(
            upstream_endpoint(settings.upstream_url), json.dumps(body).encode(), forward
        )
    except UpstreamError as exc:
        return openai_error(
            502,
            f"Upstream request failed: {exc}",
            "helm_upstream_error",
            "upstream_unreachable",
            headers,
        )
    if body.get("stream") and response.status_code == 200:
        return _with_upstream_headers(
            StreamingResponse(
                _relay(response),
                status_code=response.status_code,
                headers=headers,
                background=BackgroundTask(response.aclose),
            ),
            response,
        )
    try:
        content = await response.read(MAX_UPSTREAM_RESPONSE_BYTES)
    except UpstreamTooLarge:
        return openai_error(
            502,
            f"Upstream response exceeds {MAX_UPSTREAM_RESPONSE_BYTES} bytes; use stream=true for long outputs",
            "helm_upstream_error",
            "upstream_response_too_large",
            headers,
        )
    except UpstreamError as exc:
        return openai_error(
            502,
            f"Upstream response failed: {exc}",
            "helm_upstream_error",
            "upstream_read_failed",
            headers,
        )
    finally:
        await response.aclose()
    return _with_upstream_headers(
        Response(content, status_code=response.status_code, headers=headers), response
    )


def _with_upstream_headers(answer: Response, response: UpstreamResponse) -> Response:
    """The upstream's end-to-end headers added to ``answer``, each occurrence kept (two
    ``Set-Cookie`` lines stay two), except those the runtime answers for: its own headers and
    any ``X-HELM-*`` (an upstream cannot speak for the boundary)."""
    own = {name for name, _ in answer.raw_headers}
    answer.raw_headers.extend(
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
        if name not in _HOP_BY_HOP
        and not name.startswith("x-helm-")
        and name.encode("latin-1") not in own
    )
    return answer


async def _relay(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """Chunk by chunk, as the upstream sends them (SSE must not be buffered); the connection
    goes back to the pool (or is closed) however the stream ends."""
    try:
        async for chunk in response.iter_chunks():
            yield chunk
    finally:
        await response.aclose()
