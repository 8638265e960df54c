"""Where the runtime finds its Ed25519 keys: the receipt root signer (``<data-dir>/root.key``) and
the evidence signer (``EVIDENCE_SIGNING_KEY``).

``root.key`` holds a 32-byte seed as exactly 64 hex characters with no newline (docs/upstream-contract.md#receipt-signing);
the chart's init container copies it from the signing Secret. Dev mode generates one; production
never does (docs/upstream-contract.md#startup-order).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from nacl.signing import SigningKey

from helm_runbook.formats.keys import KeyMaterialError, Signer, parse_seed_hex


def load_root_signer(data_dir: Path, *, production: bool) -> tuple[Signer, bool]:
    """Load ``root.key``; in dev mode create it (0600) and ``root.pub``. Returns (signer, created)."""
    path = data_dir / "root.key"
    if not path.exists():
        if production:
            raise KeyMaterialError(
                f"production mode requires root signing key to exist at {path}; "
                "set helm.signing.key or helm.signing.existingSecret so the init container "
                "copies it to the data volume"
            )
        seed = os.urandom(32)
        _write_private(path, seed.hex())
        signer = Signer(SigningKey(seed))
        (data_dir / "root.pub").write_text(signer.public_key_hex + "\n")
        return signer, True
    if path.is_symlink() or not path.is_file():
        raise KeyMaterialError(f"{path} must be a regular file, not a symlink or directory")
    return Signer(SigningKey(parse_seed_hex(path.read_text(), source=str(path)))), False


def evidence_signer(value: str | None, *, production: bool, fallback: Signer) -> Signer:
    """The evidence-pack signer from ``EVIDENCE_SIGNING_KEY`` (hex, base64 or passphrase).

    Upstream accepts hex or base64 of a 32- or 64-byte key, else hashes the string as a
    passphrase. Production requires it; dev mode falls back to the root signer.
    """
    if not value:
        if production:
            raise KeyMaterialError(
                "production mode requires EVIDENCE_SIGNING_KEY; the chart sets it from the "
                "signing Secret (key signing-key)"
            )
        return fallback
    raw: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) in (64, 128):
        raw = bytes.fromhex(value)
    else:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) in (32, 64):
            raw = decoded
    seed = raw[:32] if raw is not None else hashlib.sha256(value.encode()).digest()
    return Signer(SigningKey(seed), key_id="evidence")


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
