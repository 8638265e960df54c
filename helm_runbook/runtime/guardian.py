"""The decision pipeline relevant to the chart (docs/upstream-contract.md#decisions): snapshot → PDP gate → rule → CEL.

Every path that is not a clean ALLOW is a DENY with the upstream reason code; an expression that
errors or returns a non-boolean fails closed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from helm_runbook.runtime.policy.compiler import CelError, evaluate_cel
from helm_runbook.runtime.policy.snapshot import EffectivePolicySnapshot, PolicyScope

ALLOW, DENY = "ALLOW", "DENY"


@dataclass(frozen=True)
class DecisionRequest:
    principal: str
    action: str
    resource: str
    context: dict[str, Any]
    scope: PolicyScope


@dataclass(frozen=True)
class Decision:
    id: str
    verdict: str
    reason_code: str
    reason: str
    action: str
    resource: str
    policy_hash: str
    requirement_set_hash: str = ""

    @property
    def allow(self) -> bool:
        return self.verdict == ALLOW


_UUID4_CLEAR = ~(0xF000 << 64) & ~(0xC000 << 48)  # the version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def uuid4_hex() -> str:
    """``uuid.uuid4().hex`` without building the UUID object (half its cost, once per decision)."""
    return f"{int.from_bytes(os.urandom(16), 'big') & _UUID4_CLEAR | _UUID4_SET:032x}"


_last_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def rfc3339_nano(ns: int) -> str:
    """UTC RFC3339Nano as Go formats it: trailing zeros of the fraction trimmed. Each evaluate
    writes two (the receipt's and the CEL input's): the second's text is formatted once."""
    global _last_second
    seconds, frac = divmod(ns, 1_000_000_000)
    cached, base = _last_second
    if cached != seconds:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, base)
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def cel_input(action: str, context: dict[str, Any], now_ns: int) -> dict[str, Any]:
    """What a rule's expression sees as ``input`` (docs/upstream-contract.md#decisions)."""
    return {
        "input": {
            "action": action,
            "effect": {"effect_type": action, "params": context},
            "artifacts": [],
            "timestamp": rfc3339_nano(now_ns),
            "taint": [],
        }
    }


def decide(
    snapshot: EffectivePolicySnapshot | None, request: DecisionRequest, now_ns: int
) -> Decision:
    """Run the pipeline for one request against one snapshot."""
    decision_id = "dec-" + uuid4_hex()

    def deny(code: str, reason: str, policy_hash: str = "") -> Decision:
        return Decision(
            decision_id, DENY, code, reason, request.action, request.resource, policy_hash
        )

    if snapshot is None:
        return deny("POLICY_NOT_READY", f"no active policy snapshot for {request.scope.key}")
    snapshot = snapshot.at(now_ns / 1e9)  # a last-known-good snapshot past its window denies
    if not snapshot.active or snapshot.policy is None:
        reason = snapshot.reason or "policy snapshot is not active"
        return deny("POLICY_NOT_READY", reason, snapshot.policy_hash)
    policy = snapshot.policy
    if request.resource not in policy.allow and request.action not in policy.allow:
        return deny("PDP_DENY", f"PDP_DENY (ref=helm:{policy.name})", snapshot.policy_hash)
    key = request.resource if request.action == "EXECUTE_TOOL" else request.action
    rule = policy.rules.get(key)
    if rule is None:
        return deny(
            "NO_POLICY_DEFINED",
            f"NO_POLICY_DEFINED: no policy defined for action {key}",
            snapshot.policy_hash,
        )
    if rule.program is not None:
        try:
            result = evaluate_cel(rule, cel_input(request.action, request.context, now_ns))
        except CelError as exc:  # any CEL failure or refusal fails closed
            return deny(
                "PRG_EVALUATION_ERROR",
                f"requirement {rule.requirement_set_id}:expression failed to evaluate: {exc}",
                snapshot.policy_hash,
            )
        if result is not True:
            if not isinstance(result, bool):
                return deny(
                    "PRG_EVALUATION_ERROR",
                    f"requirement {rule.requirement_set_id}:expression returned "
                    f"{type(result).__name__}, not bool",
                    snapshot.policy_hash,
                )
            return deny(
                "MISSING_REQUIREMENT",
                f"MISSING_REQUIREMENT: {rule.requirement_set_id}:expression is false",
                snapshot.policy_hash,
            )
    return Decision(
        decision_id,
        ALLOW,
        "",
        "",
        request.action,
        request.resource,
        snapshot.policy_hash,
        rule.requirement_set_hash,
    )
