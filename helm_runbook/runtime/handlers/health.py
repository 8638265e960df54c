"""Health and version routes: plain ``OK`` or 503 naming a storage fault, and the version JSON."""

from __future__ import annotations

import asyncio
import platform

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from helm_runbook.runtime import KERNEL_VERSION
from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.handlers.common import CompactJSON, runtime_of


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
    runtime = runtime_of(request)
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
