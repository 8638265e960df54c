"""``POST /internal/policy/reconcile``: the policy wake hint."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.handlers.common import CompactJSON, runtime_of
from helm_runbook.runtime.policy.reconciler import log_reconcile
from helm_runbook.runtime.problems import ProblemError


async def policy_reconcile(request: Request, identity: Identity) -> Response:
    """``POST /internal/policy/reconcile``: a wake hint. It carries no policy bytes; it only runs
    one reconcile now, and answers 200 with the status even when the reconcile failed."""
    if await request.body():
        raise ProblemError(
            400, "Wake hints carry no body: policy bytes come only from the configured source"
        )
    runtime = runtime_of(request)
    status = await asyncio.to_thread(runtime.reconciler.reconcile, runtime.scope)
    if status["reconcile_status"] != "no_change":
        log_reconcile(status, trigger="wake")
    return CompactJSON(status)
