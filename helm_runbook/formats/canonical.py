"""Canonical JSON (RFC 8785 / JCS) and the hashes built on it.

Upstream signs JCS bytes (``core/pkg/canonicalize/jcs.go``). For objects holding only ASCII
keys, strings, booleans, null and integers within 2^53, ``json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` produces exactly the JCS bytes (same escapes, same
key order); that is the fast path used on the hot path. Anything else (floats, non-ASCII keys,
big integers) goes through the ``rfc8785`` reference implementation. A property test pins the
two together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import rfc8785

_MAX_SAFE_INT = 2**53 - 1
# The JCS form of one string: the escapes json writes with ensure_ascii=False.
encode_string = json.encoder.encode_basestring


def _unsupported(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps_with(encoder: Any) -> Callable[[Any], str]:
    def dumps(value: Any) -> str:
        return "".join(encoder(value, 0))

    return dumps


# JSONEncoder.encode builds its C encoder on every call (about 1 us, once per canonicalisation);
# this one is built once. No circular-reference markers: ``_fast_path_ok`` has walked the value
# first, and a cycle ends there in RecursionError.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_dumps: Callable[[Any], str] = (
    _dumps_with(
        _c_make_encoder(None, _unsupported, encode_string, None, ":", ",", True, False, False)
    )
    if _c_make_encoder is not None
    else json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
)


def _fast_path_ok(value: Any) -> bool:
    """True when json.dumps gives the JCS bytes; written for speed (it runs per receipt)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and not _fast_path_ok(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(map(_fast_path_ok, value))
    return False


def canonical_json(value: Any) -> bytes:
    """JCS bytes of ``value``: what upstream hashes and signs."""
    if _fast_path_ok(value):
        return _dumps(value).encode("utf-8")
    return rfc8785.dumps(value)


def canonical_text(value: Any) -> str:
    """``canonical_json`` before UTF-8 encoding: for assembling a larger JCS text from parts."""
    kind = type(value)
    if kind is str:
        return encode_string(value)
    if kind is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        return int.__repr__(value)
    if _fast_path_ok(value):
        return _dumps(value)
    return rfc8785.dumps(value).decode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Bare lowercase hex SHA-256 (upstream's chain hashes carry no prefix)."""
    return hashlib.sha256(data).hexdigest()


def sha256_ref(data: bytes) -> str:
    """``sha256:<hex>``: the prefixed form used for policy, args and decision hashes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
