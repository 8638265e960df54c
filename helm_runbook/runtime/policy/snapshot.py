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

    @property
    def active(self) -> bool:
        return self.status == "active" and self.policy is not None

    def verified_at(self, now: float) -> EffectivePolicySnapshot:
        return replace(self, last_verified_at=now)

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
