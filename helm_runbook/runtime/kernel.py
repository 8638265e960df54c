"""The governed-request service: decide, sign the decision, issue and persist the receipt.

HTTP handlers and the in-process benchmark both call ``Kernel.evaluate``; it returns only after
the receipt is durable (persisted before the response: docs/upstream-contract.md#evaluate).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from helm_runbook.formats import receipts
from helm_runbook.formats.canonical import canonical_json, encode_string, sha256_hex, sha256_ref
from helm_runbook.formats.keys import Signer
from helm_runbook.runtime.guardian import Decision, DecisionRequest, decide, rfc3339_nano
from helm_runbook.runtime.policy.compiler import blocks as cel_blocks
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.store.base import (
    AppendedReceipt,
    ChainHead,
    ReceiptBuilder,
    ReceiptStore,
)
from helm_runbook.runtime.store.group_commit import GroupCommitter

if TYPE_CHECKING:  # prometheus_client loads only when metrics are enabled
    from helm_runbook.runtime.metrics import Metrics


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    receipt: dict[str, Any]
    decision_hash: str
    decision_signature: str


def decision_record(decision: Decision, principal: str, args_hash: str) -> dict[str, Any]:
    """The ``decision_record.v4`` envelope whose JCS bytes the decision signature covers."""
    return {
        "action": decision.action,
        "effect_digest": args_hash,
        "id": decision.id,
        "phenotype_hash": "",
        "policy_content_hash": decision.policy_hash,
        "reason_code": decision.reason_code,
        "reason_hash": sha256_hex(decision.reason.encode()),
        "resource": decision.resource,
        "signature_type": "ed25519:root",
        "signature_version": "decision_record.v4",
        "subject_id": principal,
        "threat_scan_hash": "",
        "verdict": decision.verdict,
    }


# ``canonical_json(decision_record(...))`` with its nine variable fields' JCS texts in place.
_RECORD_JSON = (
    '{"action":%s,"effect_digest":%s,"id":%s,"phenotype_hash":"","policy_content_hash":%s,'
    '"reason_code":%s,"reason_hash":%s,"resource":%s,"signature_type":"ed25519:root",'
    '"signature_version":"decision_record.v4","subject_id":%s,"threat_scan_hash":"","verdict":%s}'
)


def decision_record_json(decision: Decision, principal: str, args_hash: str) -> bytes:
    """The JCS bytes of ``decision_record``: its fields are strings, whose texts go into the
    record's fixed text (no dict built, walked and sorted per decision); a field of another
    type takes ``canonical_json`` (a test holds both to the same bytes)."""
    fields = (
        decision.action, args_hash, decision.id, decision.policy_hash, decision.reason_code,
        sha256_hex(decision.reason.encode()), decision.resource, principal, decision.verdict,
    )  # fmt: skip
    if set(map(type, fields)) != {str}:
        return canonical_json(decision_record(decision, principal, args_hash))
    return (_RECORD_JSON % tuple(map(encode_string, fields))).encode("utf-8")


@dataclass(frozen=True)
class _Prepared:
    decision: Decision
    decision_hash: str
    decision_signature: str
    tenant_id: str
    session_id: str
    build: ReceiptBuilder
    started: float


class Kernel:
    """One runtime scope: its policy snapshots, receipt store and root signer."""

    def __init__(
        self,
        *,
        scope: PolicyScope,
        snapshots: SnapshotStore,
        store: ReceiptStore,
        signer: Signer,
        metrics: Metrics | None = None,
    ) -> None:
        self.scope = scope
        self.snapshots = snapshots
        self.store = store
        self.signer = signer
        self.metrics = metrics
        self.committer = GroupCommitter(store)

    def _result(self, prepared: _Prepared, appended: AppendedReceipt) -> Evaluation:
        decision = prepared.decision
        if self.metrics is not None:
            self.metrics.observe_decision(
                tool=decision.action,
                verdict=decision.verdict,
                reason_code=decision.reason_code,
                session=prepared.session_id,
                seconds=time.perf_counter() - prepared.started,
            )
        return Evaluation(
            decision, appended.receipt, prepared.decision_hash, prepared.decision_signature
        )

    def evaluate(self, **request: Any) -> Evaluation:
        """Decide one governed request and return after its signed receipt is durable."""
        prepared = self._prepare(**request)
        appended = self.store.append(prepared.tenant_id, prepared.session_id, prepared.build)
        return self._result(prepared, appended)

    async def evaluate_async(self, **request: Any) -> Evaluation:
        """As ``evaluate``, sharing the commit with requests ready in the same loop turn. A rule
        whose CEL runs in the sandbox is decided in a worker thread: the loop never waits on it."""
        if self._sandboxed(request["action"], request["resource"]):
            prepared = await asyncio.to_thread(functools.partial(self._prepare, **request))
        else:
            prepared = self._prepare(**request)
        job = (prepared.tenant_id, prepared.session_id, prepared.build)
        return self._result(prepared, await self.committer.append(job))

    def _sandboxed(self, action: str, resource: str) -> bool:
        snapshot = self.snapshots.get(self.scope)
        if snapshot is None or snapshot.policy is None:
            return False
        return cel_blocks(
            snapshot.policy.rules.get(resource if action == "EXECUTE_TOOL" else action)
        )

    def _prepare(
        self,
        *,
        tenant_id: str,
        principal: str,
        session_id: str,
        action: str,
        resource: str,
        args: Any,
        context: dict[str, Any],
        source: str = "api.evaluate",
        claimed_principal: str = "",
    ) -> _Prepared:
        """Decide and sign the decision; the receipt is built when its chain head is known."""
        started = time.perf_counter()
        now_ns = time.time_ns()
        decision = decide(
            self.snapshots.get(self.scope),
            DecisionRequest(principal, action, resource, context, self.scope),
            now_ns,
        )
        args_hash = sha256_ref(canonical_json(args))
        record = decision_record_json(decision, principal, args_hash)
        decision_hash = sha256_ref(record)
        decision_signature = self.signer.sign_hex(record)
        signer = self.signer
        timestamp = rfc3339_nano(now_ns)
        receipt_id = receipts.receipt_id_for(tenant_id, decision.id)

        def build(head: ChainHead) -> AppendedReceipt:
            receipt: dict[str, Any] = {
                "receipt_id": receipt_id,
                "decision_id": decision.id,
                "effect_id": action,
                "external_reference_id": "",
                "status": decision.verdict,
                "verdict": decision.verdict,
                "reason_code": decision.reason_code,
                "decision_hash": decision_hash,
                "output_hash": decision_hash,
                "blob_hash": args_hash,
                "args_hash": args_hash,
                "prev_hash": head.chain_hash,
                "lamport_clock": head.lamport + 1,
                "timestamp": timestamp,
                "executor_id": principal,
                "policy_hash": decision.policy_hash,
                "session_id": session_id,
                "metadata": {
                    "source": source,
                    "action": action,
                    "resource": resource,
                    "reason": decision.reason,
                    "args_hash": args_hash,
                },
            }
            if claimed_principal:  # what an unauthenticated caller said it was, never trusted
                receipt["metadata"]["claimed_principal"] = claimed_principal
            chain, text = receipts.seal_stored(receipt, signer)
            return AppendedReceipt(receipt, chain, now_ns, text)

        return _Prepared(
            decision, decision_hash, decision_signature, tenant_id, session_id, build, started
        )
