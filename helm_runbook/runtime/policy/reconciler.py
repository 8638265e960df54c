"""Level-based policy reconciliation: head → load → verify → compile → validate → swap (docs/upstream-contract.md#reconcile).

``reconcile(scope)`` is idempotent: the same head twice reports ``no_change`` and swaps nothing.
A refused update never widens what is allowed: the last good snapshot keeps serving within the
last-known-good window, after which (or at once with ``deny``) the scope is invalidated and every
decision is DENY ``POLICY_NOT_READY``. The window ends when it ends: the kept snapshot carries its
deadline, and decisions check it (upstream notices only at the next reconcile of a fault).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from helm_runbook.formats.canonical import sha256_ref
from helm_runbook.formats.keys import verify_hex
from helm_runbook.formats.policy_bundle import (
    PolicyFileError,
    composite_material,
    epoch_ref,
    policy_hash,
)
from helm_runbook.runtime.log import log
from helm_runbook.runtime.policy.epochs import InstalledEpochs
from helm_runbook.runtime.policy.snapshot import EffectivePolicySnapshot, PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import (  # re-exported: the reconciler's vocabulary
    MountedFileSource,
    PolicyHead,
    PolicySource,
    compile_bundle,
)

__all__ = ["MountedFileSource", "PolicyHead", "PolicySource", "ReconcileSettings", "Reconciler"]


@dataclass(frozen=True)
class ReconcileSettings:
    signature_required: bool = False
    trust_public_key: str = ""
    on_invalid_update: str = "keepLastKnownGood"  # or "deny"
    last_known_good_max_age_s: float = 600.0


class Reconciler:
    """Serialised reconciles of one source into a SnapshotStore."""

    def __init__(
        self,
        source: PolicySource,
        snapshots: SnapshotStore,
        settings: ReconcileSettings,
        *,
        clock: Callable[[], float] = time.time,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        epochs: InstalledEpochs | None = None,
    ) -> None:
        self.source = source
        self.snapshots = snapshots
        self.settings = settings
        self.clock = clock
        self.on_status = on_status
        self.epochs = epochs or InstalledEpochs()
        self._lock = threading.Lock()
        self.last_status: dict[str, Any] | None = None

    def reconcile(self, scope: PolicyScope) -> dict[str, Any]:
        """Run one reconcile for ``scope`` and return the ReconcileStatus JSON (docs/upstream-contract.md#policy-wake)."""
        with self._lock:
            try:
                status = self._reconcile(scope)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a library panic (pyo3) is a BaseException
                # Whatever broke, the outcome is a refused update: the installed snapshot is
                # kept or expired by the same rule, and the next poll tries again.
                status = self._refused(
                    scope,
                    self.snapshots.get(scope),
                    None,
                    "internal_error",
                    f"reconcile failed: {type(exc).__name__}: {str(exc)[:300]}",
                )
            self.last_status = status
        if self.on_status:
            try:
                self.on_status(status)
            except Exception as exc:  # a status listener must not end the poll loop
                log("[helm] policy status listener failed", level="WARN", error=str(exc)[:300])
        return status

    def _reconcile(self, scope: PolicyScope) -> dict[str, Any]:
        now = self.clock()
        installed = self.snapshots.get(scope)
        published = getattr(self.source, "published_epochs", False)
        if installed is not None and (expired := installed.at(now)) is not installed:
            # Decisions have denied since the window ended; the reconcile starts from that
            # truth (a source that is back reloads, never reports ``no_change`` on it).
            self.snapshots.swap(expired)
            installed = expired
        try:
            head = self.source.head(scope)
        except PolicyFileError as exc:
            status = exc.status if exc.status in ("source_error", "no_policy") else "source_error"
            return self._refused(scope, installed, None, status, str(exc))
        if not head.policy_hash:
            return self._refused(
                scope, installed, head, "no_policy", "policy head has no hash (not ready)"
            )
        if (
            installed is not None
            and installed.active
            and installed.policy_hash == head.policy_hash
            and installed.policy_epoch == head.policy_epoch
        ):
            self.snapshots.swap(installed.verified_at(now))
            return self._status(scope, installed, head, "no_change", "", updated=False)
        if published and (why := self._replayed(scope, installed, head)):
            return self._refused(scope, installed, head, "validate_error", why)
        try:
            bundle = self.source.load(scope, head)
            self._verify(bundle, head)
            name, compiled = compile_bundle(bundle, head, self.source)
        except PolicyFileError as exc:
            return self._refused(scope, installed, head, exc.status, str(exc))
        if not scope.tenant_id or not head.policy_hash:
            return self._refused(
                scope, installed, head, "validate_error", "scope and policy hash must be set"
            )
        snapshot = EffectivePolicySnapshot(
            scope=scope,
            policy_epoch=head.policy_epoch,
            policy_hash=head.policy_hash,
            bundle_ref=head.bundle_ref,
            source_refs=head.source_refs,
            last_verified_at=now,
            policy=compiled,
            policy_name=name,
        )
        if published:
            self.epochs.record(scope.key, head.policy_epoch, head.policy_hash)
        self.snapshots.swap(snapshot)
        return self._status(scope, snapshot, head, "ok", "", updated=True)

    def _replayed(
        self, scope: PolicyScope, installed: EffectivePolicySnapshot | None, head: PolicyHead
    ) -> str:
        """Why ``head`` would walk the policy back ('' when its epoch moves forward): below the
        installed epoch (this run's or the one persisted), or equal to it with other content."""
        floor = self.epochs.floor(scope.key)
        if installed is not None and (floor is None or installed.policy_epoch > floor[0]):
            floor = (installed.policy_epoch, installed.policy_hash)
        if floor is None:
            return ""
        epoch, installed_hash = floor
        if head.policy_epoch > epoch or (
            head.policy_epoch == epoch and head.policy_hash == installed_hash
        ):
            return ""
        return (
            f"policy epoch {head.policy_epoch} is not above the installed epoch {epoch}: a "
            "replayed or rolled-back head is refused (publish a rollback as a new epoch with "
            "the old content)"
        )

    def _verify(self, bundle: bytes, head: PolicyHead) -> None:
        """Hash, then signature: the signed bytes are the composite material when one is used."""
        plain = sha256_ref(bundle)
        refs = list(head.source_refs)
        composite = policy_hash(bundle, refs)
        if head.policy_hash not in (plain, composite):
            raise PolicyFileError(
                f"policy hash mismatch: head says {head.policy_hash}, bundle hashes to {composite}",
                status="validate_error",
            )
        if (
            getattr(self.source, "signed_epochs", False)
            and head.signature
            and (epoch_ref(head.policy_epoch) not in refs or head.policy_hash != composite)
        ):
            raise PolicyFileError(
                f"the head's epoch {head.policy_epoch} is not bound by its signature: "
                f"source_refs must hold {epoch_ref(head.policy_epoch)} and policy_hash be "
                "the composite hash (republish with a current control plane)",
                status="validate_error",
            )
        if not head.signature:
            if self.settings.signature_required:
                raise PolicyFileError(
                    "signature required (HELM_POLICY_SIGNATURE_REQUIRED=true) but the policy head "
                    f"has none: write {head.bundle_ref}.sig with `helm-runbook policy sign`",
                    status="validate_error",
                )
            return
        if not self.settings.trust_public_key:
            raise PolicyFileError(
                "policy is signed but no trust key is configured: set HELM_POLICY_TRUST_PUBLIC_KEY "
                "(helm.policy.signature.publicKey or existingSecret)",
                status="validate_error",
            )
        signed = (
            composite_material(bundle, refs) if head.policy_hash == composite != plain else bundle
        )
        if not verify_hex(self.settings.trust_public_key, signed, head.signature):
            raise PolicyFileError(
                "policy signature does not verify against HELM_POLICY_TRUST_PUBLIC_KEY "
                "(wrong key, tampered bundle or pack, or a malformed .sig)",
                status="validate_error",
            )

    def _refused(
        self,
        scope: PolicyScope,
        installed: EffectivePolicySnapshot | None,
        head: PolicyHead | None,
        status: str,
        reason: str,
    ) -> dict[str, Any]:
        """Keep the last good snapshot while it is fresh, until the end of its window (decisions
        deny from then on, whenever the next reconcile comes); otherwise invalidate (fail closed)."""
        if installed is not None and installed.active:
            max_age = self.settings.last_known_good_max_age_s
            deadline = installed.last_verified_at + max_age
            expired = f"last-known-good snapshot expired after {max_age:g}s: {reason}"
            if self.settings.on_invalid_update == "deny":
                installed = installed.invalidated(f"last-known-good retention disabled: {reason}")
            elif self.clock() < deadline:
                installed = installed.kept_until(deadline, expired)
            else:
                installed = installed.invalidated(expired)
            self.snapshots.swap(installed)
        return self._status(scope, installed, head, status, reason, updated=False)

    @staticmethod
    def _status(
        scope: PolicyScope,
        installed: EffectivePolicySnapshot | None,
        head: PolicyHead | None,
        reconcile_status: str,
        reason: str,
        *,
        updated: bool,
    ) -> dict[str, Any]:
        snapshot_status = (
            "no_policy" if installed is None else ("active" if installed.active else "invalid")
        )
        return {
            "tenant_id": scope.tenant_id,
            "workspace_id": scope.workspace_id,
            "policy_hash": installed.policy_hash if installed else "",
            "policy_epoch": installed.policy_epoch if installed else 0,
            "installed_policy_hash": installed.policy_hash if installed else "",
            "installed_policy_epoch": installed.policy_epoch if installed else 0,
            "desired_policy_hash": head.policy_hash if head else "",
            "desired_policy_epoch": head.policy_epoch if head else 0,
            "reconcile_status": reconcile_status,
            "snapshot_status": snapshot_status,
            "bundle_ref": head.bundle_ref if head else (installed.bundle_ref if installed else ""),
            "source_refs": list(
                head.source_refs if head else (installed.source_refs if installed else ())
            ),
            "audit_event": "policy_reconcile",
            "reason": reason or (installed.reason if installed and not installed.active else ""),
            "updated": updated,
        }


def log_reconcile(status: Mapping[str, Any], *, trigger: str) -> None:
    """One log line per reconcile that changed something or failed (``kubectl logs`` shows why)."""
    log(
        "[helm] policy reconcile",
        level="INFO" if status["reconcile_status"] in ("ok", "no_change") else "WARN",
        trigger=trigger,
        reconcile_status=status["reconcile_status"],
        snapshot_status=status["snapshot_status"],
        policy_hash=status["policy_hash"],
        reason=status["reason"],
    )
