"""Immutable per-scope policy snapshots and the store that swaps them atomically (docs/upstream-contract.md#policy-snapshots).

Readers call ``get(scope)`` without a lock and always see a whole snapshot: the store replaces
its mapping object wholesale (copy-on-write), which is atomic under the GIL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from helm_runbook.runtime.policy.compiler import CompiledPolicy


@dataclass(frozen=True)
class PolicyScope:
    tenant_id: str = "default"
    workspace_id: str = "default"

    @classmethod
    def of(cls, tenant_id: str, workspace_id: str) -> PolicyScope:
        """Blank parts default to ``default`` (docs/upstream-contract.md#policy-snapshots)."""
        return cls(tenant_id or "default", workspace_id or "default")

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.workspace_id}"


@dataclass(frozen=True)
class EffectivePolicySnapshot:
    """What decisions are made against; ``policy`` is None once invalidated."""

    scope: PolicyScope
    policy_epoch: int
    policy_hash: str
    bundle_ref: str
    source_refs: tuple[str, ...]
    last_verified_at: float
    policy: CompiledPolicy | None
    status: str = "active"  # active | invalid
    reason: str = ""
    policy_name: str = field(default="")
    # Set while the snapshot serves as last-known-good (its source's updates fail): from this
    # time on it is expired, and decisions fail closed with ``expiry_reason``.
    serves_until: float | None = None
    expiry_reason: str = ""

    @property
    def active(self) -> bool:
        return self.status == "active" and self.policy is not None

    def verified_at(self, now: float) -> EffectivePolicySnapshot:
        """Verified against its source again: no longer last-known-good."""
        return replace(self, last_verified_at=now, serves_until=None, expiry_reason="")

    def kept_until(self, deadline: float, reason: str) -> EffectivePolicySnapshot:
        """Kept as last-known-good after a refused update: it serves until ``deadline``."""
        return replace(self, serves_until=deadline, expiry_reason=reason)

    def at(self, now: float) -> EffectivePolicySnapshot:
        """The snapshot as a decision at ``now`` must see it: a last-known-good one whose window
        has passed is invalid from that moment on, not from the next reconcile."""
        if self.active and self.serves_until is not None and now >= self.serves_until:
            return self.invalidated(self.expiry_reason)
        return self

    def invalidated(self, reason: str) -> EffectivePolicySnapshot:
        return replace(self, status="invalid", reason=reason, policy=None)


class SnapshotStore:
    """Per-scope snapshot map; ``swap`` replaces one scope's snapshot atomically."""

    def __init__(self) -> None:
        self._snapshots: dict[str, EffectivePolicySnapshot] = {}
        self._write = threading.Lock()

    def get(self, scope: PolicyScope) -> EffectivePolicySnapshot | None:
        return self._snapshots.get(scope.key)

    def swap(self, snapshot: EffectivePolicySnapshot) -> None:
        with self._write:
            updated = dict(self._snapshots)
            updated[snapshot.scope.key] = snapshot
            self._snapshots = updated
