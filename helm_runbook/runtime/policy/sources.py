"""Policy sources (docs/upstream-contract.md#policy-sources): where the reconciler reads the active head and the bundle.

Every source answers ``head(scope)`` (a cheap pointer: epoch, hash, refs, signature) and
``load(scope, head)`` (the serve-policy TOML bytes), and supplies the reference pack the TOML
names through ``load_pack``. None of them installs anything: the reconciler verifies, compiles
and swaps.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from helm_runbook.formats.canonical import sha256_ref
from helm_runbook.formats.policy_bundle import (
    PolicyFileError,
    pack_ref,
    parse_serve_policy,
    policy_hash,
    reference_pack_path,
)
from helm_runbook.runtime.policy.compiler import CompiledPolicy, compile_pack, parse_pack
from helm_runbook.runtime.policy.snapshot import PolicyScope

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class PolicyHead:
    """The cheap pointer read before any bytes (docs/upstream-contract.md#policy-snapshots)."""

    scope: PolicyScope
    policy_epoch: int
    policy_hash: str
    bundle_ref: str
    source_refs: tuple[str, ...]
    signature: str = ""


class PolicySource(Protocol):
    kind: str
    # Epochs a publisher assigns, which only move forward (controlplane, crd; a mounted file's
    # epoch is its mtime): the reconciler refuses a head below the installed epoch.
    published_epochs: bool
    # The head's signature must cover its epoch (controlplane: the head arrives over the network).
    signed_epochs: bool

    def head(self, scope: PolicyScope) -> PolicyHead: ...

    def load(self, scope: PolicyScope, head: PolicyHead) -> bytes: ...

    def load_pack(self, head: PolicyHead, reference: str) -> tuple[str, bytes]:
        """The reference pack the TOML names: (its path as bound in source_refs, its bytes)."""
        ...


def local_pack(head: PolicyHead, reference: str) -> tuple[str, bytes]:
    """The pack beside the bundle on the local filesystem (mountedFile, and controlplane whose
    ``bundle_ref`` names the mounted bundle)."""
    path = reference_pack_path(Path(head.bundle_ref), reference)
    try:
        return str(path), path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read reference pack {path}: {exc.strerror}") from exc


class MountedFileSource:
    """The chart's default: ``serve-policy.toml`` and its pack mounted from a ConfigMap or Secret."""

    kind = "mountedFile"
    published_epochs = signed_epochs = False

    def __init__(self, policy_path: Path) -> None:
        self.policy_path = policy_path.absolute()

    def head(self, scope: PolicyScope) -> PolicyHead:
        path = self.policy_path
        try:
            data = path.read_bytes()
            epoch = path.stat().st_mtime_ns
        except OSError as exc:
            raise PolicyFileError(
                f"cannot read policy file {path}: {exc.strerror}", status="source_error"
            ) from exc
        serve = parse_serve_policy(data, source=str(path))
        pack_path = reference_pack_path(path, serve.reference_pack)
        try:
            pack_bytes = pack_path.read_bytes()
        except OSError as exc:
            raise PolicyFileError(
                f"cannot read reference pack {pack_path}: {exc.strerror}", status="source_error"
            ) from exc
        refs = [str(path), pack_ref(pack_path, pack_bytes)]
        sig_path = path.with_name(path.name + ".sig")
        signature = ""
        if sig_path.exists():
            signature = sig_path.read_text().strip()
            refs.append(str(sig_path))
        return PolicyHead(
            scope=scope,
            policy_epoch=epoch,
            policy_hash=policy_hash(data, refs),
            bundle_ref=str(path),
            source_refs=tuple(refs),
            signature=signature,
        )

    def load(self, scope: PolicyScope, head: PolicyHead) -> bytes:
        try:
            return Path(head.bundle_ref).read_bytes()
        except OSError as exc:
            raise PolicyFileError(
                f"cannot read policy bundle {head.bundle_ref}: {exc.strerror}",
                status="source_error",
            ) from exc

    def load_pack(self, head: PolicyHead, reference: str) -> tuple[str, bytes]:
        return local_pack(head, reference)


def compile_bundle(
    bundle: bytes, head: PolicyHead, source: PolicySource
) -> tuple[str, CompiledPolicy]:
    """Compile a serve-policy bundle whose reference pack must match a hash bound in the head."""
    serve = parse_serve_policy(bundle, source=head.bundle_ref)
    label, pack_bytes = source.load_pack(head, serve.reference_pack)
    if f"reference_pack:{label}@{sha256_ref(pack_bytes)}" not in head.source_refs:
        raise PolicyFileError(
            f"reference pack {label} changed after the head was read "
            f"(its {sha256_ref(pack_bytes)} is not bound in source_refs)"
        )
    pack = parse_pack(pack_bytes, source=label)
    return serve.name, compile_pack(serve.name, pack, source=label)


def check_controlplane_url(url: str) -> str:
    """https, or http only to a loopback host (docs/upstream-contract.md#environment); returns the URL without a trailing /."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url.rstrip("/")
    raise PolicyFileError(
        f"HELM_POLICY_CONTROLPLANE_URL={url!r} must be https:// (http:// only to a loopback host)",
        status="source_error",
    )


MAX_HEAD_BYTES = 64 << 10  # a PolicyHead is a few hundred bytes
MAX_BUNDLE_BYTES = 4 << 20  # a serve-policy TOML
FETCH_DEADLINE_S = 10.0  # the whole of one request: connect, headers and body


def _take(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """The first ``limit`` bytes of ``chunks`` (an error page is quoted, never read whole)."""
    for chunk in chunks:
        yield chunk[:limit]
        limit -= len(chunk)
        if limit <= 0:
            return


class ControlPlaneSource:
    """``GET <url>/api/v1/policy/head`` and ``/api/v1/policy/bundle`` with the bearer token.

    The bundle is the serve-policy TOML; its reference pack is read beside ``bundle_ref`` and
    must match the pack hash the head binds in ``source_refs`` (upstream's constraint). Each
    fetch is bounded as it streams: a total deadline (a head trickled a byte at a time is
    refused when it passes, not when each read times out) and a byte cap, so a stalled or
    oversized control plane is a refused update, which starts the last-known-good window.
    """

    kind = "controlplane"
    published_epochs = signed_epochs = True

    def __init__(
        self, url: str, bearer_token: str | None, *, deadline_s: float = FETCH_DEADLINE_S
    ) -> None:
        self.url = check_controlplane_url(url)
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self._has_token = bool(bearer_token)
        self.deadline_s = deadline_s
        import httpx  # only this source needs it (about 0.15 s of imports)

        # Each wait (connect, a read) is at most half the deadline, and the deadline is checked
        # after every chunk: a fetch ends within 1.5x the deadline whatever the server does.
        self._client = httpx.Client(timeout=deadline_s / 2, headers=headers)

    def _get(self, path: str, params: dict[str, str], cap: int) -> bytes:
        """The body of a 2xx answer, within ``cap`` bytes and the deadline, or PolicyFileError."""
        import httpx

        deadline = time.monotonic() + self.deadline_s
        try:
            with self._client.stream("GET", self.url + path, params=params) as response:
                self._check_status(path, response)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise PolicyFileError(
                        f"control plane {path} answer of {declared} bytes exceeds {cap} bytes",
                        status="source_error",
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise PolicyFileError(
                            f"control plane {path} answer exceeds {cap} bytes",
                            status="source_error",
                        )
                    if time.monotonic() > deadline:
                        raise PolicyFileError(
                            f"control plane {path} not answered within {self.deadline_s:g}s",
                            status="source_error",
                        )
                return bytes(body)
        except httpx.HTTPError as exc:
            raise PolicyFileError(f"control plane {path}: {exc}", status="source_error") from exc

    def _check_status(self, path: str, response: httpx.Response) -> None:
        if response.status_code == 401:
            which = "was refused" if self._has_token else "is not set"
            raise PolicyFileError(
                f"control plane {path} answered 401: the bearer token HELM_POLICY_BEARER_TOKEN "
                f"{which}; set it with helm.policy.source.controlplane.auth.mode=bearerToken and "
                "auth.existingSecret (key HELM_POLICY_BEARER_TOKEN) or auth.bearerToken",
                status="source_error",
            )
        if not 200 <= response.status_code < 300:
            text = b"".join(_take(response.iter_bytes(), 200)).decode(errors="replace")
            raise PolicyFileError(
                f"control plane {path} answered {response.status_code}: {text[:200]}",
                status="source_error",
            )

    def head(self, scope: PolicyScope) -> PolicyHead:
        params = {"tenant_id": scope.tenant_id, "workspace_id": scope.workspace_id}
        try:
            doc = json.loads(self._get("/api/v1/policy/head", params, MAX_HEAD_BYTES))
            if not isinstance(doc, dict):
                raise TypeError("the head must be a JSON object")
            refs = doc.get("source_refs") or []
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise TypeError("source_refs must be a list of strings")
            return PolicyHead(
                scope=scope,
                policy_epoch=int(doc.get("policy_epoch") or 0),
                policy_hash=str(doc.get("policy_hash") or ""),
                bundle_ref=str(doc.get("bundle_ref") or ""),
                source_refs=tuple(refs),
                signature=str(doc.get("signature") or ""),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise PolicyFileError(
                f"control plane head is not a PolicyHead: {exc}", status="source_error"
            ) from exc

    def load(self, scope: PolicyScope, head: PolicyHead) -> bytes:
        params = {
            "tenant_id": scope.tenant_id,
            "workspace_id": scope.workspace_id,
            "policy_epoch": str(head.policy_epoch),
        }
        if not head.bundle_ref:
            raise PolicyFileError("control plane head has no bundle_ref", status="source_error")
        return self._get("/api/v1/policy/bundle", params, MAX_BUNDLE_BYTES)

    def load_pack(self, head: PolicyHead, reference: str) -> tuple[str, bytes]:
        return local_pack(head, reference)

    def close(self) -> None:
        self._client.close()
