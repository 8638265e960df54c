"""The request-body JSON reader: hostile shapes are a ValueError naming the limit, never a crash."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helm_runbook.formats.json_reader import nesting_depth, parse_json
from helm_runbook.runtime.limits import (
    MAX_JSON_ARRAY_ITEMS,
    MAX_JSON_DEPTH,
    MAX_JSON_OBJECT_MEMBERS,
    MAX_JSON_STRING_CHARS,
)

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(_VALUES)
def test_documents_within_the_limits_round_trip(value: Any) -> None:
    assert parse_json(json.dumps(value).encode()) == value


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(
    st.binary(max_size=200)
    | st.text(alphabet='[]{}",:\\0123456789.eE-+ntrufals ud8', max_size=200).map(str.encode)
)
def test_any_bytes_parse_or_raise_value_error(body: bytes) -> None:
    with contextlib.suppress(ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        parse_json(body)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 3 * MAX_JSON_DEPTH), st.sampled_from(["[]", "{}"]), st.text(max_size=5))
def test_depth_is_counted_outside_strings(depth: int, pair: str, noise: str) -> None:
    opener, closer = (pair[0], pair[1]) if pair == "[]" else ('{"k":', "}")
    inner = json.dumps(noise + '[[{{\\"' * 3)  # brackets and escaped quotes inside a string
    body = (opener * depth + inner + closer * depth).encode()
    assert nesting_depth(body) == depth
    if depth > MAX_JSON_DEPTH:
        with pytest.raises(ValueError, match=f"nesting deeper than {MAX_JSON_DEPTH}"):
            parse_json(body)
    else:
        parse_json(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000, "nesting deeper than 64 levels"),
        (b'{"a": ' * 100_000, "nesting deeper than 64 levels"),
        (b'{"tool": "x", "tool": "y"}', "duplicate key 'tool'"),
        (b'{"a": {"b": 1, "b": 1}}', "duplicate key 'b'"),
        (b"[" + b"0," * MAX_JSON_ARRAY_ITEMS + b"0]", f"more than {MAX_JSON_ARRAY_ITEMS} items"),
        (json.dumps({f"k{n}": 0 for n in range(MAX_JSON_OBJECT_MEMBERS + 1)}).encode(), "members"),
        (json.dumps(["x" * (MAX_JSON_STRING_CHARS + 1)]).encode(), "more than 1048576 characters"),
        (b'{"model": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "lone UTF-16 surrogate"),
        (b'{"n": 9007199254740992}', "2^53-1"),
        (b'{"n": ' + b"9" * 100_000 + b"}", "2^53-1"),
        (b'{"f": 1e400}', "overflows a double"),
        (b'{"f": 0.' + b"1" * 100 + b"}", "more than 64 characters"),
        (b'{"f": NaN}', "NaN is not valid JSON"),
    ],
)
def test_hostile_documents_are_refused_naming_the_limit(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("^", r"\^")):
        parse_json(body)


def test_the_limits_themselves_are_accepted() -> None:
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) == eval(
        "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    )
    assert len(parse_json(json.dumps([0] * MAX_JSON_ARRAY_ITEMS).encode())) == MAX_JSON_ARRAY_ITEMS
    assert parse_json(b'{"n": -9007199254740991, "s": "\\ud83d\\ude00"}') == {
        "n": -(2**53 - 1),
        "s": "\U0001f600",
    }
