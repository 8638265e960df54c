"""A stand-in policy control plane for local runs and tests (the model is mock_upstream.py).

It answers what the runtime's ``controlplane`` policy source asks
(helm_runbook/runtime/policy/sources.py): ``GET /api/v1/policy/head`` and
``GET /api/v1/policy/bundle`` with ``tenant_id``, ``workspace_id`` (and ``policy_epoch`` for the
bundle), each with ``Authorization: Bearer <token>``; 401 without it. An operator publishes a
signed version with ``publish``: each version is a new ``policy_epoch``. Faults can be injected
per version (``unsigned``, ``tampered``, ``wrong-hash``) and for the whole service (``down``).

The bundle is the serve-policy TOML; its reference pack is read by the runtime beside
``bundle_ref`` in the pod's policy mount, so the head binds the pack *as mounted*
(``reference_pack:<mount>/<pack>@sha256:...``) and the pack must be in that mount.

The bearer token is a secret: it comes from ``HELM_RUNBOOK_CONTROLPLANE_TOKEN`` or a 0600 file,
never from argv, and only its fingerprint is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helm_runbook.errors import InputError, SecretMaterialMissing
from helm_runbook.formats.canonical import sha256_ref
from helm_runbook.formats.keys import Signer
from helm_runbook.formats.policy_bundle import (
    PolicyFileError,
    composite_material,
    epoch_ref,
    pack_ref,
    parse_serve_policy,
    policy_hash,
    reference_pack_path,
)
from helm_runbook.standins.background import BackgroundServer

TOKEN_ENV = "HELM_RUNBOOK_CONTROLPLANE_TOKEN"
DEFAULT_MOUNT = Path("/etc/helm-ai-kernel/policy")
FAULTS = ("", "unsigned", "tampered", "wrong-hash")
MAX_BUNDLE_BYTES = 1 << 20  # what one published version may weigh (TOML or pack)
MAX_VERSIONS = 1000  # kept per control plane; the oldest are dropped


def token_fingerprint(token: str) -> str:
    """``sha256:<12 hex>`` of the token: safe to show, enough to tell two tokens apart."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def load_token(token_file: Path | None = None) -> str:
    """The bearer token from a 0600 file (group/other may not read it), else ``HELM_RUNBOOK_CONTROLPLANE_TOKEN``."""
    if token_file is not None:
        try:
            mode = token_file.stat().st_mode
            text = token_file.read_text().strip()
        except OSError as exc:
            raise SecretMaterialMissing(
                f"cannot read token file {token_file}: {exc.strerror}",
                fix="pass --token-file with a file holding the bearer token",
            ) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError(
                f"token file {token_file} is readable by others (mode {stat.S_IMODE(mode):o})",
                fix=f"chmod 600 {token_file}",
            )
        if not text:
            raise InputError(f"token file {token_file} is empty", fix="write the token into it")
        return text
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        raise SecretMaterialMissing(
            "no control-plane bearer token",
            fix=f"set {TOKEN_ENV} or pass --token-file (a 0600 file)",
        )
    return value


@dataclass(frozen=True)
class PolicyVersion:
    """One published version: the head the runtime reads and the bundle bytes it then loads."""

    policy_epoch: int
    policy_hash: str
    bundle_ref: str
    source_refs: tuple[str, ...]
    signature: str
    bundle: bytes
    fault: str = ""

    def head(self, tenant_id: str, workspace_id: str) -> dict[str, Any]:
        return {
            "tenant_id": tenant_id,
            "workspace_id": workspace_id,
            "policy_epoch": self.policy_epoch,
            "policy_hash": self.policy_hash,
            "bundle_ref": self.bundle_ref,
            "source_refs": list(self.source_refs),
            "signature": self.signature,
        }


@dataclass
class ControlPlaneState:
    """What the stand-in serves; ``requests`` records each call (path, scope, authorised)."""

    token: str
    mount_dir: Path = DEFAULT_MOUNT
    down: bool = False
    versions: list[PolicyVersion] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def current(self) -> PolicyVersion | None:
        return self.versions[-1] if self.versions else None

    def publish(
        self, policy_toml: bytes, pack: bytes, signer: Signer | None, *, fault: str = ""
    ) -> PolicyVersion:
        """Publish a new version (a new epoch) of the serve-policy TOML and its pack as mounted.

        ``fault``: ``unsigned`` (no signature), ``tampered`` (the served bundle differs from the
        signed one, and the head's hash follows it), ``wrong-hash`` (the head's hash is not the
        bundle's).
        """
        if fault not in FAULTS:
            raise InputError(f"unknown fault {fault!r}", fix=f"use one of {', '.join(FAULTS[1:])}")
        if len(policy_toml) > MAX_BUNDLE_BYTES or len(pack) > MAX_BUNDLE_BYTES:
            raise InputError(
                f"a policy version is limited to {MAX_BUNDLE_BYTES} bytes per file",
                fix="publish a smaller policy or pack",
            )
        bundle_path = self.mount_dir / "serve-policy.toml"
        try:
            serve = parse_serve_policy(policy_toml, source="published policy")
            pack_path = reference_pack_path(bundle_path, serve.reference_pack)
        except PolicyFileError as exc:
            raise InputError(str(exc), fix="publish a valid serve-policy.toml") from exc
        if fault != "unsigned" and signer is None:
            raise SecretMaterialMissing(
                "publishing a signed version needs the policy signing key",
                fix="pass the signer from helm_runbook.tools.policy.load_policy_signer",
            )
        with self._lock:
            epoch = (self.current.policy_epoch if self.current else 0) + 1
            # the epoch is bound into what the signature covers: an old head served again is
            # refused by the runtime (its epoch is not above the installed one)
            refs = [str(bundle_path), pack_ref(pack_path, pack), epoch_ref(epoch)]
            signature = (
                signer.sign_hex(composite_material(policy_toml, refs))
                if signer is not None and fault != "unsigned"
                else ""
            )
            served = policy_toml
            if fault == "tampered":
                served = policy_toml + b"\n# tampered after signing\n"
            digest = policy_hash(served, refs)
            if fault == "wrong-hash":
                digest = sha256_ref(b"not this bundle: " + policy_toml)
            version = PolicyVersion(
                epoch, digest, str(bundle_path), tuple(refs), signature, served, fault
            )
            self.versions.append(version)
            del self.versions[:-MAX_VERSIONS]
        return version


def _scope(request: Request) -> tuple[str, str] | None:
    tenant = request.query_params.get("tenant_id", "")
    workspace = request.query_params.get("workspace_id", "")
    return (tenant, workspace) if tenant and len(tenant) <= 256 and len(workspace) <= 256 else None


def create_controlplane(state: ControlPlaneState) -> Starlette:
    """The ASGI app answering the runtime's control-plane policy source."""

    def guard(request: Request) -> Response | tuple[str, str]:
        expected = f"Bearer {state.token}".encode()  # read per call: the token may be rotated
        authorised = hmac.compare_digest(
            request.headers.get("authorization", "").encode(), expected
        )
        state.requests.append(
            {"path": request.url.path, "authorised": authorised, "down": state.down}
        )
        del state.requests[:-MAX_VERSIONS]
        if state.down:
            return JSONResponse({"error": "control plane unavailable"}, status_code=503)
        if not authorised:
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        scope = _scope(request)
        if scope is None:
            return JSONResponse({"error": "tenant_id is required"}, status_code=400)
        return scope

    async def head(request: Request) -> Response:
        checked = guard(request)
        if isinstance(checked, Response):
            return checked
        version = state.current
        if version is None:
            return JSONResponse({"error": "no policy published"}, status_code=404)
        return JSONResponse(version.head(*checked))

    async def bundle(request: Request) -> Response:
        checked = guard(request)
        if isinstance(checked, Response):
            return checked
        epoch = request.query_params.get("policy_epoch", "")
        version = next((v for v in state.versions if str(v.policy_epoch) == epoch), None)
        if version is None:
            return JSONResponse({"error": f"no policy epoch {epoch[:20]!r}"}, status_code=404)
        return Response(version.bundle, media_type="application/toml")

    return Starlette(
        routes=[Route("/api/v1/policy/head", head), Route("/api/v1/policy/bundle", bundle)]
    )


class ControlPlaneServer(BackgroundServer):
    """The stand-in control plane on 127.0.0.1 in a background thread (tests, runbooks).

    ``with ControlPlaneServer(ControlPlaneState(token)) as cp: cp.url`` → ``http://127.0.0.1:<port>``.
    """

    def __init__(self, state: ControlPlaneState, *, port: int = 0) -> None:
        self.state = state
        super().__init__(create_controlplane(state), port=port)

    @property
    def url(self) -> str:
        return self.base_url

    def __enter__(self) -> ControlPlaneServer:
        super().__enter__()
        return self


def serve(
    port: int,
    policy: Path,
    signer: Signer,
    token: str,
    *,
    host: str = "127.0.0.1",
    mount_dir: Path = DEFAULT_MOUNT,
) -> None:
    """Serve ``policy`` (serve-policy.toml beside its pack) as epoch 1 until interrupted."""
    from helm_runbook.standins.background import listen, serve_forever

    state = ControlPlaneState(token, mount_dir=mount_dir)
    try:
        data = policy.read_bytes()
        serve_policy = parse_serve_policy(data, source=str(policy))
        pack = reference_pack_path(policy, serve_policy.reference_pack).read_bytes()
    except (OSError, PolicyFileError) as exc:
        raise InputError(
            f"cannot publish {policy}: {exc}", fix="pass serve-policy.toml beside its pack"
        ) from exc
    version = state.publish(data, pack, signer)
    sock = listen(host, port)
    print(
        f"control plane: epoch {version.policy_epoch} {version.policy_hash}, "
        f"signed by {signer.fingerprint}, token {token_fingerprint(token)}",
        flush=True,
    )
    serve_forever(create_controlplane(state), sock, "control plane")
