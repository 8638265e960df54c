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
from urllib.parse import urlsplit

from helm_runbook.errors import StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.standins.controlplane import (
    DEFAULT_MOUNT,
    ControlPlaneServer,
    ControlPlaneState,
    token_fingerprint,
)
from helm_runbook.steps.policy import (
    SERVE_POLICY,
    governed_body,
    policy_signer,
    skipped_without_stand_in,
)
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient

TOKEN_KEY = "HELM_POLICY_BEARER_TOKEN"
AWAIT_PERIOD_S = 0.05  # await_verdict's own poll: well under the runtime's poll interval


@dataclass
class ControlPlane:
    """The control plane the release reads its policy from (its repr shows no token).

    ``server`` is the stand-in on this machine's loopback; None for the operator's own control
    plane, where the steps that drive the stand-in (publish, down, token rotation) and the checks
    that expect their effects are skipped, each recorded with the reason.
    """

    url: str
    config_map: str
    token_secret: str
    token: str = field(repr=False)  # the one in the token Secret, which the pod holds
    server: ControlPlaneServer | None = None

    @property
    def stand_in(self) -> bool:
        return self.server is not None

    @property
    def published_epoch(self) -> int | None:
        """The epoch the stand-in serves now; None on the operator's control plane."""
        if self.server is None or self.server.state.current is None:
            return None
        return self.server.state.current.policy_epoch

    @property
    def state(self) -> ControlPlaneState:
        if self.server is None:
            raise StepFailed("controlplane.state", expected="the stand-in control plane",
                             seen=f"the operator's control plane at {self.url}",
                             fix="only the stand-in (target=local, controlplane_url empty) can be driven by runbook 07-control-plane-install")  # fmt: skip
        return self.server.state

    def close(self) -> None:
        if self.server is not None:
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
               "  --from-literal=HELM_POLICY_TRUST_PUBLIC_KEY=<64-char-ed25519-public-key-hex>"
               if source == "created" else f"kubectl get secret {secret}")  # fmt: skip
    result = StepReport("secrets.policy_trust", f"Secret {secret}", ["Secret", "key", "fingerprint", "source"],
                        [[secret, "HELM_POLICY_TRUST_PUBLIC_KEY", signer.fingerprint, source]],
                        summary="the policy signing key's public half", seconds=time.perf_counter() - start,
                        command=command, values={"secret": secret, "trust_key_fingerprint": signer.fingerprint,
                                                 "guide_command": "kubectl create secret generic helm-policy-trust"})  # fmt: skip
    record(result)
    return result


def start_control_plane(
    target: Target, *, url: str = "", token_secret: str = "helm-policy-controlplane",
    config_map: str = "helm-policy-cp", port: int = 0,
) -> ControlPlane:  # fmt: skip
    """The control plane the release will read: the operator's at ``url``, else the stand-in.

    The stand-in listens on 127.0.0.1 of this machine, which only the local target's pod reaches:
    on a cluster ``url`` (https) is required, and the token Secret must already hold the
    operator's ``HELM_POLICY_BEARER_TOKEN``. For the stand-in the token is generated once and
    stored only in ``token_secret``.
    """
    start = time.perf_counter()
    if url:
        plane = _operators_control_plane(target, url, token_secret, config_map)
        source = "the operator's control plane"
    else:
        if target.name != "local":
            raise StepFailed("controlplane.start", expected="controlplane_url: the operator's control plane (https)",
                             seen=f"none given for the {target.name} target; the stand-in listens on this machine's "
                                  "127.0.0.1, which a cluster's pod cannot reach",
                             fix=f"run with -p controlplane_url https://<control plane> and the bearer token in Secret "
                                 f"{token_secret} (key {TOKEN_KEY}), or use target=local")  # fmt: skip
        if token_secret not in target.secrets:
            target.create_secret(token_secret, {TOKEN_KEY: token.token_urlsafe(32)})
            target.save()
        bearer = target.secrets[token_secret][TOKEN_KEY].decode()
        server = ControlPlaneServer(ControlPlaneState(bearer, mount_dir=DEFAULT_MOUNT), port=port)
        server.__enter__()
        plane = ControlPlane(server.url, config_map, token_secret, bearer, server)
        source = "stand-in"
    command = ("" if not plane.stand_in else
               "HELM_RUNBOOK_CONTROLPLANE_TOKEN=... helm-runbook controlplane serve policy/serve-policy.toml")  # fmt: skip
    result = StepReport("controlplane.start", f"{source} policy control plane", ["field", "value"],
                        [["url", plane.url], ["bearer token", f"Secret {token_secret} ({token_fingerprint(plane.token)})"],
                         ["source", source]],
                        summary=f"{'serving' if plane.stand_in else 'using'} {plane.url}", seconds=time.perf_counter() - start,
                        command=command, values={"url": plane.url, "token_fingerprint": token_fingerprint(plane.token),
                                                 "stand_in": plane.stand_in})  # fmt: skip
    record(result)
    return plane


def _operators_control_plane(
    target: Target, url: str, token_secret: str, config_map: str
) -> ControlPlane:
    """Check what the release will need of the operator's control plane before anything is installed."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (
        parts.scheme == "http" and loopback and target.name == "local"
    ):
        raise StepFailed("controlplane.start", expected="an https URL for helm.policy.source.controlplane.url",
                         seen=f"{parts.scheme}://{parts.hostname}", fix="the runtime refuses plain http to a control plane off loopback: give its https URL")  # fmt: skip
    held = target.secrets.get(token_secret, {}).get(TOKEN_KEY, b"")
    if not held:
        raise StepFailed("controlplane.start", expected=f"Secret {token_secret} with key {TOKEN_KEY}",
                         seen=f"no such Secret in namespace {target.namespace}" if token_secret not in target.secrets
                              else f"Secret {token_secret} has no key {TOKEN_KEY}",
                         fix=f"kubectl create secret generic {token_secret} --from-literal={TOKEN_KEY}=<token> "
                             "(the token your control plane accepts)")  # fmt: skip
    return ControlPlane(url.rstrip("/"), config_map, token_secret, held.decode())


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
    if skipped := skipped_without_stand_in(
        plane, "controlplane.publish", f"publish {fault or 'a signed'} version"
    ):
        return skipped
    start = time.perf_counter()
    signer = policy_signer(target)
    pack = _pack(actions)
    pack_name = f"pack-{hashlib.sha256(pack).hexdigest()[:12]}.json"
    toml = SERVE_POLICY.replace("./reference-pack.json", f"./{pack_name}").encode()
    files = dict(target.config_maps.get(plane.config_map, {}))
    files[pack_name] = pack.decode()
    files.setdefault("serve-policy.toml", toml.decode())
    target.apply_config_map(plane.config_map, files)
    # The head names the pack: publish it only once the pack is in the pod's mount (the local
    # kubelet's sync), or a reconcile in between would find the pack missing.
    target.wait_config_synced(plane.config_map)
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
    step = "controlplane.down" if down else "controlplane.up"
    if skipped := skipped_without_stand_in(
        plane, step, "take the control plane down" if down else "bring it back"
    ):
        return skipped
    plane.state.down = down
    result = StepReport("controlplane.down" if down else "controlplane.up",
                        "control plane down" if down else "control plane back up", ["field", "value"],
                        [["url", plane.url], ["answers", "503" if down else "200"]],
                        summary="down" if down else "up", values={"down": down})  # fmt: skip
    record(result)
    return result


def rotate_control_plane_token(plane: ControlPlane, *, rotated: bool) -> StepReport:
    """Rotate the token the control plane accepts (the pod keeps the old one), or restore it."""
    if skipped := skipped_without_stand_in(
        plane, "controlplane.token", "rotate the accepted token"
    ):
        return skipped
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
    auth_secret: str = "helm-auth", stand_in: ControlPlane | None = None,
) -> StepReport:  # fmt: skip
    """Evaluate ``tool`` without a wake hint until the verdict is ``expect`` (the poll interval at work).

    ``stand_in``: the control plane whose versions make ``expect`` due (skipped off the stand-in)."""
    if skipped := skipped_without_stand_in(
        stand_in, "policy.await", f"evaluate {tool} until {expect}"
    ):
        return skipped
    start = time.perf_counter()
    body = governed_body(tool, args, "controlplane")
    decision: dict[str, Any] = {}
    with RuntimeClient.for_target(target, auth_secret=auth_secret) as client:
        # Each evaluate is a real decision (with its receipt); a short period so the step ends
        # within AWAIT_PERIOD_S of the change, not a quarter of a second after it.
        while True:
            decision = client.evaluate(body)
            if decision.get("verdict") == expect or time.perf_counter() - start > within:
                break
            time.sleep(AWAIT_PERIOD_S)
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
                                "reason": decision.get("reason"), "waited_s": round(waited, 3), "within_s": within})  # fmt: skip
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
