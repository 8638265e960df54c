"""The one JSON reader for request bodies: hostile shapes are a ``ValueError`` naming the limit.

Python's ``json`` recurses once per nesting level (100,000 ``[`` raise ``RecursionError``),
silently keeps the last of duplicate keys, and accepts lone surrogates (``"\\ud800"``) that no
UTF-8 encoder can write back. ``parse_json`` refuses each of these before or while parsing; the
limits are here (the runtime's ``limits.py`` lists them with the others; the offline verifiers
read files with this reader too). Callers bound the byte size first.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_JSON_DEPTH = 64
MAX_JSON_ARRAY_ITEMS = 10_000
MAX_JSON_OBJECT_MEMBERS = 10_000
MAX_JSON_STRING_CHARS = 1 << 20

_MAX_EXACT_INT = 2**53 - 1
# A JSON string token, escapes included (unrolled so it runs in linear time).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Opening brackets become +1, closing ones -1 (as signed bytes), everything else is deleted.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[{]}")


def nesting_depth(body: bytes) -> int:
    """The deepest bracket nesting outside strings, in C-speed passes (no recursion)."""
    brackets = _STRING.sub(b"", body).translate(_BRACKETS, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(accumulate(memoryview(brackets).cast("b")))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _exact_int(text: str) -> int:
    """Integers a receipt can carry exactly (I-JSON, RFC 7493): beyond ±(2^53-1) is refused."""
    if len(text) > 17:  # 2^53 has 16 digits; refuse before int() does quadratic work
        raise ValueError(
            f"integer {text[:40]} is outside ±(2^53-1), the range JSON numbers carry exactly"
        )
    value = int(text)
    if abs(value) > _MAX_EXACT_INT:
        raise ValueError(
            f"integer {text[:40]} is outside ±(2^53-1), the range JSON numbers carry exactly"
        )
    return value


def _finite_float(text: str) -> float:
    if len(text) > 64:
        raise ValueError(f"number {text[:40]}... has more than 64 characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} overflows a double")
    return value


def _check_string(text: str, where: str) -> None:
    if len(text) > MAX_JSON_STRING_CHARS:
        raise ValueError(f"{where} has more than {MAX_JSON_STRING_CHARS} characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{where} contains a lone UTF-16 surrogate (\\ud800-\\udfff)"
            ) from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_JSON_OBJECT_MEMBERS:
        raise ValueError(f"an object has more than {MAX_JSON_OBJECT_MEMBERS} members")
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find the duplicate to name it
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:40]!r} in an object")
            seen.add(key)
    return out


def _check_values(value: Any) -> None:
    """Array lengths, string lengths and encodability, walked without recursion."""
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            _check_string(item, "a string")
        elif kind is list:
            if len(item) > MAX_JSON_ARRAY_ITEMS:
                raise ValueError(f"an array has more than {MAX_JSON_ARRAY_ITEMS} items")
            extend(item)
        elif kind is dict:
            for key, member in item.items():
                _check_string(key, "an object key")
                push(member)


def parse_json(body: bytes) -> Any:
    """Parse a request body within the limits; ``ValueError`` says which one it broke."""
    depth = nesting_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_JSON_DEPTH} levels")
    value = json.loads(
        body,
        object_pairs_hook=_object,
        parse_constant=_reject_constant,
        parse_int=_exact_int,
        parse_float=_finite_float,
    )
    _check_values(value)
    return value
