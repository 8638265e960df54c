"""Ed25519 key material in the forms the runtime writes and the operator side checks: a signer
with its public key and fingerprint, the 64-hex seed format (docs/upstream-contract.md#receipt-signing),
and signature verification.

Where the runtime finds its keys (``root.key``, ``EVIDENCE_SIGNING_KEY``) is runtime/keys.py.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from nacl._sodium import ffi as _ffi  # PyNaCl's own libsodium binding
from nacl._sodium import lib as _sodium
from nacl.bindings import crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE_BYTES = 64
# libsodium writes every byte of a signed message (signature, then the message): no zeroing.
_new_bytes = _ffi.new_allocator(should_clear_after_alloc=False)


class KeyMaterialError(Exception):
    """Key material is missing or malformed; the message names the file or variable and the fix."""


@dataclass(frozen=True)
class Signer:
    """An Ed25519 signer with its public key in the forms receipts carry."""

    key: SigningKey
    key_id: str = "root"

    @functools.cached_property
    def public_key_hex(self) -> str:
        return bytes(self.key.verify_key).hex()

    @functools.cached_property
    def _secret(self) -> bytes:
        """libsodium's 64-byte secret key (seed + public key), derived once."""
        return crypto_sign_seed_keypair(bytes(self.key))[1]

    @property
    def fingerprint(self) -> str:
        """``ed25519:sha256:<12 hex>`` of the public key: safe to show in logs and notebooks."""
        return self.fingerprint_of(self.key.verify_key)

    @staticmethod
    def fingerprint_of(verify_key: VerifyKey) -> str:
        return "ed25519:sha256:" + hashlib.sha256(bytes(verify_key)).hexdigest()[:12]

    def sign_hex(self, message: bytes) -> str:
        """The detached signature in hex: ``key.sign(message).signature.hex()``, three per
        receipt, called on libsodium itself: PyNaCl's ``crypto_sign`` wrapper zeroes a buffer,
        allocates a length out-parameter and copies the whole signed message out (about 0.5 us
        of each signature's 24 here)."""
        signed = _new_bytes("unsigned char[]", len(message) + _SIGNATURE_BYTES)
        if _sodium.crypto_sign(signed, _ffi.NULL, message, len(message), self._secret) != 0:
            raise RuntimeError("libsodium crypto_sign failed")
        signature: bytes = _ffi.buffer(signed, _SIGNATURE_BYTES)[:]
        return signature.hex()


def parse_seed_hex(text: str, *, source: str) -> bytes:
    """Decode a 64-hex Ed25519 seed exactly as upstream does (no trimming)."""
    if not _HEX64.fullmatch(text):
        hint = " (it ends with a newline: write it without one)" if text.rstrip() != text else ""
        raise KeyMaterialError(
            f"{source} must hold exactly 64 hex characters (a 32-byte Ed25519 seed), "
            f"found {len(text)} characters{hint}"
        )
    return bytes.fromhex(text)


def verify_hex(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid Ed25519 signature of ``message``."""
    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(message, bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError):
        return False
    return True
