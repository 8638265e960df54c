"""``POST /api/v1/evaluate``: the governed decision, its signed receipt persisted before the answer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from helm_runbook.runtime.auth import Identity
from helm_runbook.runtime.handlers.common import (
    CompactJSON,
    checked_id,
    read_json_object,
    runtime_of,
)
from helm_runbook.runtime.problems import ProblemError

_AUTHORITY_KEYS = ("principal", "principal_id", "tenant", "tenant_id", "workspace", "workspace_id")


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


async def evaluate(request: Request, identity: Identity) -> Response:
    """``POST /api/v1/evaluate``: decide, persist the signed receipt, then answer (docs/upstream-contract.md#evaluate)."""
    runtime = runtime_of(request)
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
    checked_id("Evaluate route tool", tool)
    checked_id("Evaluate route effect_level", effect_level)
    session_id = _one_of(
        ("session_id", body.get("session_id")), ("context.session_id", context.get("session_id"))
    )
    if not session_id:
        raise ProblemError(
            400, "Evaluate route session_id is required (top level or context.session_id)"
        )
    checked_id("Evaluate route session_id", session_id, session=True)
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
        decision_context["workspace_id"] = checked_id("X-Helm-Workspace-ID", workspace)
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
