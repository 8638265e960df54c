"""Control-plane policy steps: the trust Secret, the stand-in control plane, signed versions
published to it, faults, and verdicts that follow the control plane (runbook 07).

The pack a version names is read by the runtime beside ``bundle_ref`` in its policy mount, so
each version's pack is added to the mounted ConfigMap under a content-addressed name
(``pack-<12 hex>.json``); which pack decides is chosen by the control plane's head alone.
"""

from __future__ import annotations

import hashlib
import json
import secrets as token
import time
from dataclasses import dataclass, field
from typing import Any

from helm_runbook.errors import StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.standins.controlplane import (
    DEFAULT_MOUNT,
    ControlPlaneServer,
    ControlPlaneState,
    token_fingerprint,
)
from helm_runbook.steps.policy import SERVE_POLICY, policy_signer
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient

TOKEN_KEY = "HELM_POLICY_BEARER_TOKEN"


@dataclass
class ControlPlane:
    """The running stand-in and what the runbook needs to drive it (its repr shows no token)."""

    server: ControlPlaneServer
    config_map: str
    token: str = field(repr=False)  # the one in the token Secret, which the pod holds

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> ControlPlaneState:
        return self.server.state

    def close(self) -> None:
        self.server.close()


def create_trust_secret(target: Target, *, secret: str = "helm-policy-trust") -> StepReport:
    """``kubectl create secret generic helm-policy-trust``: the policy key's public half."""
    start = time.perf_counter()
    signer = policy_signer(target)
    source = "existing Secret"
    if secret not in target.secrets:
        target.create_secret(secret, {"HELM_POLICY_TRUST_PUBLIC_KEY": signer.public_key_hex})
        target.save()
        source = "created"
    held = target.secrets[secret].get("HELM_POLICY_TRUST_PUBLIC_KEY", b"").decode()
    if held != signer.public_key_hex:
        raise StepFailed(f"secrets.{secret}", expected=f"HELM_POLICY_TRUST_PUBLIC_KEY of {signer.fingerprint}",
                         seen=f"Secret {secret} holds another key ({held[:12] or 'none'}…)",
                         fix=f"kubectl delete secret {secret} and run this step again, or sign with the key it trusts")  # fmt: skip
    command = (f"kubectl create secret generic {secret} \\\n"
               "  --from-literal=HELM_POLICY_TRUST_PUBLIC_KEY=<64-char-ed25519-public-key-hex>")  # fmt: skip
    result = StepReport("secrets.policy_trust", f"Secret {secret}", ["Secret", "key", "fingerprint", "source"],
                        [[secret, "HELM_POLICY_TRUST_PUBLIC_KEY", signer.fingerprint, source]],
                        summary="the policy signing key's public half", seconds=time.perf_counter() - start,
                        command=command, values={"secret": secret, "trust_key_fingerprint": signer.fingerprint,
                                                 "guide_command": "kubectl create secret generic helm-policy-trust"})  # fmt: skip
    record(result)
    return result


def start_control_plane(
    target: Target, *, token_secret: str = "helm-policy-controlplane",
    config_map: str = "helm-policy-cp", port: int = 0,
) -> ControlPlane:  # fmt: skip
    """Start the stand-in control plane on 127.0.0.1 with a bearer token kept in ``token_secret``.

    The token is generated once and stored only in the Secret (key ``HELM_POLICY_BEARER_TOKEN``).
    """
    start = time.perf_counter()
    if token_secret not in target.secrets:
        target.create_secret(token_secret, {TOKEN_KEY: token.token_urlsafe(32)})
        target.save()
    bearer = target.secrets[token_secret][TOKEN_KEY].decode()
    server = ControlPlaneServer(ControlPlaneState(bearer, mount_dir=DEFAULT_MOUNT), port=port)
    server.__enter__()
    plane = ControlPlane(server, config_map, bearer)
    result = StepReport("controlplane.start", "stand-in policy control plane", ["field", "value"],
                        [["url", plane.url], ["bearer token", f"Secret {token_secret} ({token_fingerprint(bearer)})"]],
                        summary=f"serving on {plane.url}", seconds=time.perf_counter() - start,
                        command="HELM_RUNBOOK_CONTROLPLANE_TOKEN=... helm-runbook controlplane serve policy/serve-policy.toml",
                        values={"url": plane.url, "token_fingerprint": token_fingerprint(bearer)})  # fmt: skip
    record(result)
    return plane


def _pack(actions: list[dict[str, Any]]) -> bytes:
    doc = {"pack_id": "helm-chart-reference-pack", "label": "control-plane policy", "version": 1,
           "runtime_actions": actions}  # fmt: skip
    return (json.dumps(doc, indent=2) + "\n").encode()


def publish_version(
    target: Target, plane: ControlPlane, actions: list[dict[str, Any]], *, fault: str = ""
) -> StepReport:
    """Publish a new version (a new epoch): its pack joins the mount, the control plane signs the head.

    ``fault``: ``unsigned``, ``tampered`` or ``wrong-hash`` publish a version the runtime must refuse.
    """
    start = time.perf_counter()
    signer = policy_signer(target)
    pack = _pack(actions)
    pack_name = f"pack-{hashlib.sha256(pack).hexdigest()[:12]}.json"
    toml = SERVE_POLICY.replace("./reference-pack.json", f"./{pack_name}").encode()
    files = dict(target.config_maps.get(plane.config_map, {}))
    files[pack_name] = pack.decode()
    files.setdefault("serve-policy.toml", toml.decode())
    target.apply_config_map(plane.config_map, files)
    version = plane.state.publish(toml, pack, signer, fault=fault)
    rows: list[list[object]] = [
        [a["action"], a.get("expression", ""), a.get("description", "")] for a in actions
    ]
    result = StepReport("controlplane.publish", f"epoch {version.policy_epoch}" + (f" ({fault})" if fault else ""),
                        ["action", "expression", "description"], rows,
                        summary=f"{version.policy_hash[:19]}…, " + (f"fault {fault}" if fault else f"signed by {signer.fingerprint}"),
                        seconds=time.perf_counter() - start,
                        values={"policy_epoch": version.policy_epoch, "policy_hash": version.policy_hash,
                                "fault": fault, "actions": [a["action"] for a in actions]})  # fmt: skip
    record(result)
    return result


def set_control_plane_down(plane: ControlPlane, down: bool) -> StepReport:
    """Take the stand-in down (every call answers 503) or bring it back."""
    plane.state.down = down
    result = StepReport("controlplane.down" if down else "controlplane.up",
                        "control plane down" if down else "control plane back up", ["field", "value"],
                        [["url", plane.url], ["answers", "503" if down else "200"]],
                        summary="down" if down else "up", values={"down": down})  # fmt: skip
    record(result)
    return result


def rotate_control_plane_token(plane: ControlPlane, *, rotated: bool) -> StepReport:
    """Rotate the token the control plane accepts (the pod keeps the old one), or restore it."""
    if rotated:
        plane.state.token = token.token_urlsafe(32)
    else:
        plane.state.token = plane.token
    fp = token_fingerprint(plane.state.token)
    result = StepReport("controlplane.token", "token rotated on the control plane" if rotated else "token restored",
                        ["field", "value"], [["accepted token", fp], ["pod's token", token_fingerprint(plane.token)]],
                        summary="the pod's token is now refused" if rotated else "the pod's token is accepted",
                        values={"rotated": rotated, "token_fingerprint": fp})  # fmt: skip
    record(result)
    return result


def await_verdict(
    target: Target, tool: str, *, expect: str, within: float, args: dict[str, Any] | None = None,
    auth_secret: str = "helm-auth",
) -> StepReport:  # fmt: skip
    """Evaluate ``tool`` without a wake hint until the verdict is ``expect`` (the poll interval at work)."""
    start = time.perf_counter()
    body = {"tool": tool, "effect_level": "E1", "session_id": "controlplane", "args": args or {}}
    decision: dict[str, Any] = {}
    with RuntimeClient.for_target(target, auth_secret=auth_secret) as client:
        for _ in range(int(within / 0.25) + 1):
            decision = client.evaluate(body)
            if decision.get("verdict") == expect:
                break
            time.sleep(0.25)
    waited = time.perf_counter() - start
    if decision.get("verdict") != expect:
        raise StepFailed("policy.await", expected=f"{expect} for {tool} within {within:g}s",
                         seen=f"{decision.get('verdict')} {decision.get('reason')}",
                         fix="check helm.policy.source.pollInterval and the reconcile status")  # fmt: skip
    keys = ("verdict", "reason_code", "reason", "policy_ref")
    result = StepReport("policy.await", f"evaluate {tool} until {expect}", ["field", "value"],
                        [[k, decision.get(k, "")] for k in keys] + [["after", f"{waited:.2f}s"]],
                        summary=f"{expect} after {waited:.2f}s (limit {within:g}s)", seconds=waited,
                        values={"tool": tool, "verdict": decision["verdict"], "reason_code": decision.get("reason_code"),
                                "waited_s": round(waited, 3), "within_s": within})  # fmt: skip
    record(result)
    return result


__all__ = [
    "ControlPlane",
    "await_verdict",
    "create_trust_secret",
    "publish_version",
    "rotate_control_plane_token",
    "set_control_plane_down",
    "start_control_plane",
]
