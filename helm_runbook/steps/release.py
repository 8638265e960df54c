"""Day-two steps on an installed release: ``helm diff upgrade``, ``helm upgrade --wait``,
``helm history``, ``helm rollback``, and governed traffic kept flowing through them so that no
acknowledged receipt can go missing unnoticed.

The same calls on both targets: the kube target reads Helm's own release storage, the local
target keeps revisions the same way (``targets/local.py``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import render
from helm_runbook.chart.values import helm_command, merge_values
from helm_runbook.errors import RuntimeAPIError, StepFailed, TargetUnavailable
from helm_runbook.formats.keys import Signer
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.targets.base import Revision, Target
from helm_runbook.tools.client import RuntimeClient
from helm_runbook.tools.diagnose import diagnose

SHOWN = 80  # characters of a changed field's value shown in the diff table


def history(target: Target, *, release: str = "helm-ai-kernel") -> StepReport:
    """``helm history RELEASE``: revision, when, status, description."""
    start = time.perf_counter()
    revisions = target.history(release)
    if not revisions:
        raise StepFailed("history", expected=f"release {release} installed", seen="no revisions",
                         fix="run runbook 03-production-install first")  # fmt: skip
    rows: list[list[object]] = [
        [r.number, r.updated, r.status, r.description[:160]] for r in revisions
    ]
    deployed = [r.number for r in revisions if r.status == "deployed"]
    result = StepReport("history", f"helm history {release}", ["revision", "updated", "status", "description"], rows,
                        summary=f"{len(revisions)} revisions; deployed: {deployed or 'none'}",
                        seconds=time.perf_counter() - start, command=f"helm history {release} --namespace {target.namespace}",
                        values={"revisions": [r.number for r in revisions], "statuses": [r.status for r in revisions],
                                "deployed": deployed[-1] if deployed else None})  # fmt: skip
    record(result)
    return result


def _deployed(target: Target, release: str) -> Revision:
    revisions = target.history(release)
    live = [r for r in revisions if r.status == "deployed"]
    if not live:
        raise StepFailed("diff", expected=f"a deployed revision of {release}",
                         seen=f"statuses {[r.status for r in revisions] or 'none'}",
                         fix="run runbook 03-production-install first, or roll back to a good revision")  # fmt: skip
    return live[-1]


def deployed_values(
    target: Target, *, release: str = "helm-ai-kernel", changes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``helm get values RELEASE`` of the deployed revision, with ``changes`` merged over it:
    the values an upgrade applies when it changes only what it names."""
    return merge_values(_deployed(target, release).values, changes or {})


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Dotted path → scalar; list items keyed by their ``name`` when they have one."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _leaves(item, f"{path}.{key}" if path else str(key))
        return out or {path: {}}
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            key = (
                item.get("name")
                if isinstance(item, dict) and isinstance(item.get("name"), str)
                else i
            )
            out |= _leaves(item, f"{path}[{key}]")
        return out or {path: []}
    return {path: value}


def _shown(kind: str, path: str, value: Any) -> str:
    """A value as the diff shows it: Secret data as a fingerprint, never the bytes."""
    if value is None:
        return "(absent)"
    if kind == "Secret" and path.split(".")[0] in ("data", "stringData"):
        return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]
    text = str(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def diff_upgrade(
    target: Target, values: dict[str, Any], *, release: str = "helm-ai-kernel"
) -> StepReport:
    """What ``helm upgrade`` with ``values`` would change: the deployed revision's objects against
    the new render, by kind/name, one row per changed field (Secret data as fingerprints)."""
    start = time.perf_counter()
    live = _deployed(target, release)
    new = render(CHART_DIR, values, release=release, namespace=target.namespace)
    before = {
        (o["kind"], o["metadata"]["name"]): o for o in live.manifest if o.get("kind") != "Pod"
    }
    after = {
        (o["kind"], o["metadata"]["name"]): o for _, o in new.objects if o.get("kind") != "Pod"
    }
    rows: list[list[object]] = []
    changed: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        kind, name = key
        if key not in before:
            rows.append([f"{kind}/{name}", "added", "", "", ""])
            changed.append(f"{kind}/{name}")
            continue
        if key not in after:
            rows.append([f"{kind}/{name}", "removed", "", "", ""])
            changed.append(f"{kind}/{name}")
            continue
        old, now = _leaves(before[key]), _leaves(after[key])
        fields = sorted(p for p in old.keys() | now.keys() if old.get(p) != now.get(p))
        if fields:
            changed.append(f"{kind}/{name}")
        for path in fields:
            rows.append([f"{kind}/{name}", "changed", path, _shown(kind, path, old.get(path)),
                         _shown(kind, path, now.get(path))])  # fmt: skip
    result = StepReport("diff", f"helm diff upgrade {release} (against revision {live.number})",
                        ["object", "change", "field", "deployed", "after upgrade"], rows,
                        summary=f"{len(changed)} objects change, {len(before.keys() | after.keys()) - len(changed)} unchanged",
                        seconds=time.perf_counter() - start,
                        command=helm_command(values, release=release, namespace=target.namespace)
                        .replace("helm upgrade --install ", "helm diff upgrade ", 1),
                        values={"against": live.number, "changed": changed,
                                "fields": [f"{r[0]}:{r[2]}" for r in rows if r[1] == "changed"]})  # fmt: skip
    record(result)
    return result


def _claims(target: Target) -> list[str]:
    """The data claims the Deployment's pod mounts."""
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in target.deployment["spec"]["template"]["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    ]


def upgrade(
    target: Target, values: dict[str, Any], *, release: str = "helm-ai-kernel", timeout: float = 60.0,
    expect_failure: bool = False,
) -> StepReport:  # fmt: skip
    """``helm upgrade --wait --timeout``: the Deployment rolls onto the same data claim.

    ``expect_failure``: this values change is known to break readiness (a drill): the step passes
    when the rollout times out, ``diagnose()`` names the cause and the revision is ``failed``."""
    start = time.perf_counter()
    claims_before = {c: target.claim_phase(c) for c in _claims(target)}
    command = (
        helm_command(values, release=release, namespace=target.namespace).replace(
            "--install ", "", 1
        )
        + f" \\\n  --wait --timeout {timeout:g}s"
    )
    try:
        target.upgrade(values, release, timeout=timeout)
    except StepFailed as exc:
        finding = diagnose(target).finding("readiness")
        revisions = target.history(release)
        if not expect_failure:
            raise StepFailed("upgrade", expected=exc.expected, seen=f"{exc.seen}; diagnose(): {finding.seen}",
                             fix=(finding.fix or exc.fix) + f"; or `helm rollback {release}`") from exc  # fmt: skip
        failed = revisions[-1] if revisions else None
        if failed is None or failed.status != "failed" or finding.status != "problem":
            raise StepFailed("upgrade", expected="the failed revision recorded and diagnose() naming the cause",
                             seen=f"latest {failed}, readiness check {finding.status}: {finding.seen}",
                             fix="read the rollout error above") from exc  # fmt: skip
        rows: list[list[object]] = [
            ["kubectl rollout status", exc.seen[:300]],
            ["diagnose(): readiness", finding.seen],
            ["the guide's fix", finding.fix],
            ["helm history", f"revision {failed.number} failed"],
        ]
        result = StepReport("upgrade", f"helm upgrade {release} (expected to fail)", ["check", "seen"], rows,
                            summary=f"revision {failed.number} failed as expected: {finding.seen}",
                            seconds=time.perf_counter() - start, command=command,
                            values={"revision": failed.number, "status": failed.status, "finding": finding.check,
                                    "finding_seen": finding.seen})  # fmt: skip
        record(result)
        return result
    revisions = target.history(release)
    latest = revisions[-1]
    if expect_failure:
        raise StepFailed("upgrade", expected="this values change to break readiness (a drill)",
                         seen=f"revision {latest.number} {latest.status}: ready",
                         fix="the drill's values no longer break the probe: pick another fault")  # fmt: skip
    claims_after = {c: target.claim_phase(c) for c in _claims(target)}
    if claims_before and claims_after != claims_before:
        raise StepFailed("upgrade.pvc", expected=f"the same data claims {claims_before}", seen=str(claims_after),
                         fix="keep persistence.enabled and the claim name across upgrades")  # fmt: skip
    rows = [[f"revision {r.number}", r.status, r.description] for r in revisions[-2:]]
    rows += [
        [f"PersistentVolumeClaim/{c}", phase, "kept, mounted by the new pod"]
        for c, phase in claims_after.items()
    ]
    result = StepReport("upgrade", f"helm upgrade {release} --wait", ["object", "status", "what happened"], rows,
                        summary=f"revision {latest.number} {latest.status}", seconds=time.perf_counter() - start,
                        command=command, values={"revision": latest.number, "status": latest.status,
                                                 "claims": sorted(claims_after)})  # fmt: skip
    record(result)
    return result


def rollback(
    target: Target, revision: int | None = None, *, release: str = "helm-ai-kernel", timeout: float = 60.0
) -> StepReport:  # fmt: skip
    """``helm rollback RELEASE [REVISION] --wait``: the stored manifest of a good revision applied
    again as a new revision; the pod is ready again when the step returns."""
    start = time.perf_counter()
    before = target.history(release)
    made = target.rollback(release, revision, timeout=timeout)
    source = revision if revision is not None else (before[-1].number - 1 if before else 0)
    rows: list[list[object]] = [
        [r.number, r.status, r.description[:160]] for r in target.history(release)[-3:]
    ]
    result = StepReport("rollback", f"helm rollback {release} {source}", ["revision", "status", "description"], rows,
                        summary=f"revision {made.number} {made.status}: {made.description}",
                        seconds=time.perf_counter() - start,
                        command=f"helm rollback {release} {source} --namespace {target.namespace} --wait --timeout {timeout:g}s",
                        values={"revision": made.number, "status": made.status, "rolled_back_to": source})  # fmt: skip
    record(result)
    return result


# -- governed traffic through an upgrade -----------------------------------------------------------


@dataclass
class Traffic:
    """Governed requests sent in a background thread (bounded in count and time); every receipt
    id the runtime acknowledged is kept, so none can disappear unnoticed."""

    target: Target
    session: str = "agent.day2"
    interval: float = 0.2
    auth_secret: str = "helm-auth"
    max_seconds: float = 900.0
    max_requests: int = 5000
    sent: int = 0
    acknowledged: list[str] = field(default_factory=list)
    unanswered: int = 0  # no answer while the pod was being replaced: never acknowledged
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="governed-traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        body = {"principal": self.session, "action": "EXECUTE_TOOL", "resource": "day2.unknown.tool",
                "context": {"session_id": self.session}}  # fmt: skip
        client: RuntimeClient | None = None
        url = ""
        while (
            not self._stop.is_set()
            and time.monotonic() < deadline
            and self.sent < self.max_requests
        ):
            self.sent += 1
            try:
                if client is None or url != self.target.url("http"):
                    if client is not None:
                        client.close()
                    client = RuntimeClient.for_target(
                        self.target, auth_secret=self.auth_secret, timeout=2.0
                    )
                    url = self.target.url("http")
                receipt = client.evaluate(body).get("receipt_id")
                if isinstance(receipt, str) and receipt:
                    self.acknowledged.append(receipt)
            except (RuntimeAPIError, TargetUnavailable, KeyError, StepFailed):
                self.unanswered += 1
            self._stop.wait(self.interval)
        if client is not None:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_traffic(
    target: Target,
    *,
    session: str = "agent.day2",
    interval: float = 0.2,
    auth_secret: str = "helm-auth",
) -> Traffic:
    """Start governed requests (one every ``interval`` seconds, with the admin key of
    ``auth_secret``) that run until ``receipts_kept``; returns once the first one is
    acknowledged, so the traffic is flowing before what follows."""
    traffic = Traffic(target, session=session, interval=interval, auth_secret=auth_secret).start()
    deadline = time.monotonic() + 10
    while not traffic.acknowledged and time.monotonic() < deadline:
        time.sleep(0.05)
    if not traffic.acknowledged:
        traffic.stop()
        raise StepFailed("traffic.start", expected="the first governed request acknowledged within 10s",
                         seen=f"{traffic.sent} sent, none acknowledged",
                         fix="check the release is ready (wait_for_rollout) and the auth Secret's admin key")  # fmt: skip
    record(StepReport("traffic.start", "governed traffic started", [], values={"session": session}))
    return traffic


def receipts_kept(
    target: Target, traffic: Traffic, *, auth_secret: str = "helm-auth", stop: bool = False
) -> StepReport:
    """Every receipt id acknowledged so far is listed by the runtime (none lost); ``stop`` ends
    the traffic first."""
    start = time.perf_counter()
    if stop:
        traffic.stop()
    acknowledged = list(traffic.acknowledged)
    with RuntimeClient.for_target(target, auth_secret=auth_secret) as client:
        listed = {r.get("receipt_id") for r in client.receipts(session_id=traffic.session)}
    lost = [r for r in acknowledged if r not in listed]
    if lost:
        raise StepFailed("receipts.kept", expected=f"all {len(acknowledged)} acknowledged receipts listed",
                         seen=f"{len(lost)} missing, e.g. {lost[0]}",
                         fix="the pod lost its data: check persistence.enabled and the claim it mounts")  # fmt: skip
    rows: list[list[object]] = [["requests sent", traffic.sent], ["acknowledged (receipt id returned)", len(acknowledged)],
                                ["unanswered while the pod was replaced", traffic.unanswered],
                                [f"listed in session {traffic.session}", len(listed)], ["acknowledged but missing", 0]]  # fmt: skip
    result = StepReport("receipts.kept", "no acknowledged receipt lost", ["count", "value"], rows,
                        summary=f"{len(acknowledged)} acknowledged, {len(listed)} listed, 0 lost",
                        seconds=time.perf_counter() - start,
                        values={"sent": traffic.sent, "acknowledged": len(acknowledged), "listed": len(listed),
                                "unanswered": traffic.unanswered, "lost": 0})  # fmt: skip
    record(result)
    return result


# -- signing-key continuity --------------------------------------------------------------------------


def _trust_root(seed_hex: bytes) -> str:
    return Signer.fingerprint_of(SigningKey(bytes.fromhex(seed_hex.decode())).verify_key)


def signing_key_continuity(
    target: Target, *, signing_secret: str = "helm-signing", timeout: float = 60.0,
    refusal_timeout: float = 10.0,
) -> StepReport:  # fmt: skip
    """The signing Secret changed under a PVC that already holds ``root.key``: the init container
    refuses the silent rotation (the pod stays in Init:Error). The step then takes the first of the
    operator's two decisions, restoring the Secret that wrote ``root.key``, and the pod is ready
    again with the same trust root. The new key is random, used once, and never shown."""
    start = time.perf_counter()
    original = dict(target.secrets.get(signing_secret) or {})
    if "signing-key" not in original:
        raise StepFailed("signing.continuity", expected=f"Secret {signing_secret} with signing-key",
                         seen="not found", fix="run runbook 02-secret-setup first")  # fmt: skip
    rotated_seed = secrets.token_hex(32)
    before, rotated = _trust_root(original["signing-key"]), _trust_root(rotated_seed.encode())
    restore = {k: v.decode() for k, v in original.items()}
    target.replace_secret(signing_secret, {**restore, "signing-key": rotated_seed})
    refusal: StepFailed | None = None
    try:
        target.restart_pod()
        target.wait_ready(refusal_timeout)
    except StepFailed as exc:
        refusal = exc
    finally:
        target.replace_secret(signing_secret, restore)
    target.restart_pod()
    waited = target.wait_ready(timeout)
    if refusal is None or "refusing silent rotation" not in refusal.seen:
        raise StepFailed("signing.continuity", expected="the init container refusing a changed signing Secret",
                         seen=refusal.seen if refusal else "the pod started with the other key",
                         fix="check the chart's prepare-authority-state init container")  # fmt: skip
    claim = next(iter(_claims(target)), "<release>-data")
    rows: list[list[object]] = [
        ["the signing Secret replaced", f"trust root {before} → {rotated}"],
        ["kubectl rollout restart", "init container: " + refusal.seen.split(": ", 1)[-1][:200]],
        ["operator choice: restore the Secret that wrote root.key", f"done here: ready after {waited:.2f}s, trust root {before}"],
        ["operator choice: a new key, deliberately", f"kubectl delete pvc {claim} after helm uninstall: an empty volume, new chains; "
                                                 f"receipts signed before verify only against {before}"],
    ]  # fmt: skip
    result = StepReport("signing.continuity", "changing the signing key under an existing PVC is refused",
                        ["what happened", "seen"], rows, summary=f"refused, restored; trust root {before}",
                        seconds=time.perf_counter() - start,
                        values={"refused": True, "trust_root": before, "rotated_trust_root": rotated,
                                "ready_after_s": round(waited, 3)})  # fmt: skip
    record(result)
    return result
