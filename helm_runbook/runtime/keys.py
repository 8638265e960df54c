"""Ed25519 key material: the receipt root signer (``<data-dir>/root.key``) and evidence signer.

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
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class KeyMaterialError(Exception):
    """Key material is missing or malformed; the message names the file or variable and the fix."""


@dataclass(frozen=True)
class Signer:
    """An Ed25519 signer with its public key in the forms receipts carry."""

    key: SigningKey
    key_id: str = "root"

    @property
    def public_key_hex(self) -> str:
        return bytes(self.key.verify_key).hex()

    @property
    def fingerprint(self) -> str:
        """``ed25519:sha256:<12 hex>`` of the public key: safe to show in logs and notebooks."""
        return self.fingerprint_of(self.key.verify_key)

    @staticmethod
    def fingerprint_of(verify_key: VerifyKey) -> str:
        return "ed25519:sha256:" + hashlib.sha256(bytes(verify_key)).hexdigest()[:12]

    def sign_hex(self, message: bytes) -> str:
        return self.key.sign(message).signature.hex()


def parse_seed_hex(text: str, *, source: str) -> bytes:
    """Decode a 64-hex Ed25519 seed exactly as upstream does (no trimming)."""
    if not _HEX64.fullmatch(text):
        hint = " (it ends with a newline: write it without one)" if text.rstrip() != text else ""
        raise KeyMaterialError(
            f"{source} must hold exactly 64 hex characters (a 32-byte Ed25519 seed), "
            f"found {len(text)} characters{hint}"
        )
    return bytes.fromhex(text)


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


def verify_hex(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid Ed25519 signature of ``message``."""
    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(message, bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError):
        return False
    return True


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
