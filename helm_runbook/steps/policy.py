"""Policy rollout steps: publish a signed mounted policy, wake the reconciler, check verdicts.

The policy signing seed comes from ``HELM_RUNBOOK_POLICY_KEY`` or a 0600 key file created in the
target's workdir; only the public key's fingerprint is shown.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from helm_runbook.errors import StepFailed
from helm_runbook.formats.canonical import sha256_ref
from helm_runbook.formats.keys import Signer
from helm_runbook.formats.policy_bundle import signing_material
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient
from helm_runbook.tools.policy import (
    DEFAULT_MOUNT,
    POLICY_KEY_ENV,
    keygen,
    load_policy_signer,
    sign_policy,
)


class ControlPlaneSource(Protocol):
    """What a check needs of runbook 07's control plane (``steps.controlplane.ControlPlane``)."""

    url: str

    @property
    def stand_in(self) -> bool: ...

    @property
    def published_epoch(self) -> int | None: ...


SERVE_POLICY = """\
name = "helm-chart"
profile = "kubernetes"
reference_pack = "./reference-pack.json"

[server]
bind = "0.0.0.0"
port = 8080

[receipts]
store = "sqlite"
path = "/data/helm.db"
"""


# The wake hint's repeats while a ConfigMap change reaches the mount: 50 ms, doubling to 2 s,
# for at most the target's kubelet sync time and this grace.
WAKE_FIRST_PAUSE_S = 0.05
WAKE_MAX_PAUSE_S = 2.0
WAKE_GRACE_S = 2.0
LKG_EXPIRED = "last-known-good snapshot expired"  # how the runtime's denial after the window begins


def policy_signer(target: Target) -> Signer:
    """The operator's policy key: ``HELM_RUNBOOK_POLICY_KEY``, else a key file kept in the workdir."""
    if os.environ.get(POLICY_KEY_ENV):
        return load_policy_signer(None)
    key_file = target.workdir / "policy.key"
    if not key_file.exists():
        keygen(key_file)
    return load_policy_signer(key_file)


def _files(actions: list[dict[str, Any]]) -> dict[str, str]:
    pack = {
        "pack_id": "helm-chart-reference-pack",
        "label": "runbook policy",
        "version": 1,
        "runtime_actions": actions,
    }
    return {
        "serve-policy.toml": SERVE_POLICY,
        "reference-pack.json": json.dumps(pack, indent=2) + "\n",
    }


def publish_signed_policy(
    target: Target, actions: list[dict[str, Any]], *, config_map: str = "helm-policy", sign: bool = True,
    mount_dir: Path = DEFAULT_MOUNT,
) -> StepReport:  # fmt: skip
    """Write the policy, sign it as it will be mounted, and apply it as a ConfigMap.

    ``sign=False`` publishes the change with the *old* signature: a tampered update.
    """
    start = time.perf_counter()
    generated = not os.environ.get(POLICY_KEY_ENV) and not (target.workdir / "policy.key").exists()
    signer = policy_signer(target)
    source = target.workdir / "policy-src"
    source.mkdir(parents=True, exist_ok=True)
    files = _files(actions)
    previous_sig = target.config_maps.get(config_map, {}).get("serve-policy.toml.sig", "")
    for name, text in files.items():
        (source / name).write_text(text)
    if sign:
        sign_policy(source / "serve-policy.toml", signer, mount_dir=mount_dir)
        files["serve-policy.toml.sig"] = (source / "serve-policy.toml.sig").read_text()
    else:
        files["serve-policy.toml.sig"] = previous_sig
    target.apply_config_map(config_map, files)
    # What the runtime will report as the desired policy once the files reach the pod's mount.
    expected = sha256_ref(signing_material(files["serve-policy.toml"].encode(), source / "serve-policy.toml",
                                           mount_dir=mount_dir))  # fmt: skip
    rows: list[list[object]] = [
        [a["action"], a.get("expression", ""), a.get("description", "")] for a in actions
    ]
    commands = [*(["helm-runbook policy keygen --out policy.key"] if generated else []),
                *([f"helm-runbook policy sign policy/serve-policy.toml --key-file policy.key --mount-path {mount_dir}"] if sign else []),
                f"kubectl create configmap {config_map} --from-file=policy/ -o yaml --dry-run=client | kubectl apply -f -"]  # fmt: skip
    result = StepReport("policy.publish", f"ConfigMap {config_map} ({'signed' if sign else 'NOT re-signed'})",
                        ["action", "expression", "description"], rows,
                        summary=f"signed by {signer.fingerprint}" if sign else "signature left as it was",
                        seconds=time.perf_counter() - start, command="\n".join(commands),
                        values={"actions": [a["action"] for a in actions], "signed": sign,
                                "trust_key_fingerprint": signer.fingerprint, "policy_hash": expected,
                                "config_map": config_map})  # fmt: skip
    record(result)
    return result


def trust_public_key(target: Target) -> str:
    """HELM_POLICY_TRUST_PUBLIC_KEY for the install values (public, safe to pass around)."""
    return policy_signer(target).public_key_hex


def skipped_without_stand_in(
    plane: ControlPlaneSource | None, step: str, title: str
) -> StepReport | None:
    """On the operator's control plane, a step that drives the stand-in (or expects what it
    served) cannot run: record it as skipped with the reason, never silently. None otherwise."""
    if plane is None or plane.stand_in:
        return None
    reason = f"needs the stand-in control plane (target=local); {plane.url} is the operator's"
    result = StepReport(step, f"{title}: skipped", ["skipped because"], [[reason]], summary="skipped",
                        values={"skipped": reason})  # fmt: skip
    record(result)
    return result


def wake_reconcile(
    target: Target, *, expect: str = "ok", snapshot: str = "active", reason: str = "",
    auth_secret: str = "helm-auth", stand_in: ControlPlaneSource | None = None,
    published: StepReport | None = None,
) -> StepReport:  # fmt: skip
    """``POST /internal/policy/reconcile`` with the service key: a wake hint, never policy bytes.
    The answer must be ``expect`` with the snapshot ``snapshot``; ``reason`` must appear in it.
    ``stand_in``: the control plane whose versions make ``expect`` due (skipped off the stand-in).

    ``published``: the ``publish_signed_policy`` step whose files the answer is about. A changed
    ConfigMap reaches the pod's mount only after the kubelet's sync (``target.config_sync_s``), so
    the hint is repeated, backing off, until the runtime's desired policy is the published one
    (without ``published``: while it answers ``no_change`` for an expected change)."""
    if skipped := skipped_without_stand_in(
        stand_in, "policy.wake", f"wake hint, expecting {expect}"
    ):
        return skipped
    start = time.perf_counter()
    want = str(published.values.get("policy_hash") or "") if published is not None else ""
    if published is not None:
        # Where the target can tell (the local kubelet), wait for the mount itself: a change of
        # the signature alone leaves the policy hash as it was.
        target.wait_config_synced(str(published.values.get("config_map") or "") or None)
    deadline = time.monotonic() + target.config_sync_s + WAKE_GRACE_S
    wakes, pause = 0, WAKE_FIRST_PAUSE_S
    with RuntimeClient.for_target(target, auth_secret=auth_secret) as client:
        while True:
            status = client.reconcile()
            wakes += 1
            if want:  # the mount shows the published files
                synced = status.get("desired_policy_hash") == want
            elif stand_in is not None:  # the stand-in published the head itself
                synced = True
            else:  # a change is due: no_change means the mount has not caught up yet
                synced = status["reconcile_status"] != "no_change" or expect == "no_change"
            if synced or time.monotonic() + pause > deadline:
                break
            time.sleep(pause)  # the mount has not caught up with the ConfigMap yet
            pause = min(pause * 2, WAKE_MAX_PAUSE_S)
        command = f"HELM_RUNBOOK_SERVICE_API_KEY=... helm-runbook policy status {client.api_url}"
    seen = f"{status['reconcile_status']}/{status['snapshot_status']}: {status['reason']}"
    answer = (status["reconcile_status"], status["snapshot_status"])
    loaded_by = "wake hint"
    if want and status.get("desired_policy_hash") != want:
        raise StepFailed("policy.wake", expected=f"the published policy {want[:19]}… in the pod's mount",
                         seen=f"after {wakes} wake hints in {time.perf_counter() - start:.1f}s the runtime still reads "
                              f"{str(status.get('desired_policy_hash'))[:19]}…",
                         fix=f"check the ConfigMap {published.values.get('config_map') if published else ''} is the one "
                             "the Deployment mounts (helm.policy.source.mountedFile.existingConfigMap)")  # fmt: skip
    if (
        expect == "ok"
        and answer == ("no_change", snapshot)
        and want
        and status.get("installed_policy_hash") == want
    ):
        loaded_by = "poll"  # the runtime's poll loaded the published files before this hint
    elif (
        expect == "ok"
        and answer == ("no_change", snapshot)
        and stand_in is not None
        and stand_in.published_epoch == status.get("policy_epoch")
    ):
        # The poll loaded the version the stand-in had just published in the moment between the
        # publish and this hint: it is live either way, and the record says which one loaded it.
        loaded_by = "poll"
    elif answer != (expect, snapshot) or reason not in status["reason"]:
        raise StepFailed("policy.wake", expected=f"{expect}/{snapshot}" + (f" naming {reason!r}" if reason else ""),
                         seen=seen, fix="check the source's head, the bundle hash/signature and HELM_POLICY_TRUST_PUBLIC_KEY")  # fmt: skip
    keys = (
        "reconcile_status",
        "snapshot_status",
        "policy_hash",
        "desired_policy_hash",
        "policy_epoch",
        "updated",
        "reason",
    )
    result = StepReport("policy.wake", "wake hint → reconcile", ["field", "value"], [[k, status.get(k, "")] for k in keys],
                        summary=f"{status['reconcile_status']}, snapshot {status['snapshot_status']}"
                                + (f" ({wakes} hints while the mount synced)" if wakes > 1 else ""),
                        seconds=time.perf_counter() - start, command=command,
                        values={k: status.get(k) for k in keys} | {"wakes": wakes}
                               | ({"loaded_by": loaded_by} if expect == "ok" else {}))  # fmt: skip
    record(result)
    return result


def governed_body(tool: str, args: dict[str, Any] | None, session_id: str) -> dict[str, Any]:
    """The ``/api/v1/evaluate`` body of the runbooks' governed requests (effect level E1)."""
    return {"tool": tool, "effect_level": "E1", "session_id": session_id, "args": args or {}}


def governed_request(
    target: Target, tool: str, *, expect: str, args: dict[str, Any] | None = None, auth_secret: str = "helm-auth",
    session_id: str = "policy-rollout", stand_in: ControlPlaneSource | None = None,
) -> StepReport:  # fmt: skip
    """One ``/api/v1/evaluate`` call that must come back with verdict ``expect``.
    ``stand_in``: the control plane whose versions make ``expect`` due (skipped off the stand-in)."""
    if skipped := skipped_without_stand_in(
        stand_in, "policy.verdict", f"evaluate {tool}, expecting {expect}"
    ):
        return skipped
    start = time.perf_counter()
    with RuntimeClient.for_target(target, auth_secret=auth_secret) as client:
        decision = client.evaluate(governed_body(tool, args, session_id))
    if decision.get("verdict") != expect:
        reason = str(decision.get("reason") or "")
        fix = ("the last-known-good window had already ended when this check ran (the machine was slower than "
               "the window allows): run again with a longer last_known_good_max_age"
               if reason.startswith(LKG_EXPIRED) else
               "check the reconcile status: a refused update keeps the previous policy")  # fmt: skip
        raise StepFailed("policy.verdict", expected=f"{expect} for {tool}", seen=f"{decision.get('verdict')} {reason}",
                         fix=fix)  # fmt: skip
    keys = ("verdict", "reason_code", "reason", "policy_ref", "receipt_id")
    result = StepReport("policy.verdict", f"evaluate {tool}", ["field", "value"], [[k, decision.get(k, "")] for k in keys],
                        summary=f"{decision['verdict']} as expected", seconds=time.perf_counter() - start,
                        values={"tool": tool, "verdict": decision["verdict"], "reason_code": decision["reason_code"]})  # fmt: skip
    record(result)
    return result


__all__ = [
    "governed_request",
    "publish_signed_policy",
    "trust_public_key",
    "wake_reconcile",
]
