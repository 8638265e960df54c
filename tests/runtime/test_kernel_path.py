"""The in-process evaluate path's shortcuts give what the plain code gave: decision ids, the
timestamp of each second, the CEL input bounds and the signer's signatures."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from helm_runbook.formats.keys import Signer
from helm_runbook.runtime import guardian
from helm_runbook.runtime.policy import compiler
from helm_runbook.runtime.policy.compiler import CelError, cel_input_values


def test_decision_ids_are_random_version_4_uuids() -> None:
    ids = {guardian.uuid4_hex() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert parsed.hex == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_each_second_is_formatted_for_itself() -> None:
    second = 1_796_656_960_000_000_000
    assert guardian.rfc3339_nano(second + 360_391_829) == "2026-12-07T15:22:40.360391829Z"
    assert guardian.rfc3339_nano(second + 1_000_000_100) == "2026-12-07T15:22:41.0000001Z"
    assert guardian.rfc3339_nano(second) == "2026-12-07T15:22:40Z"  # back to a second seen before
    assert guardian.rfc3339_nano(0) == "1970-01-01T00:00:00Z"


def test_the_signer_signs_as_pynacl_does() -> None:
    signer = Signer(SigningKey(b"\x07" * 32))
    for message in (b"", b"receipt", bytes(range(256)) * 40):
        assert signer.sign_hex(message) == SigningKey(b"\x07" * 32).sign(message).signature.hex()
    assert signer.public_key_hex == bytes(SigningKey(b"\x07" * 32).verify_key).hex()


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=2048))
def test_libsodium_called_directly_signs_byte_for_byte_as_pynacl(
    seed: bytes, message: bytes
) -> None:
    signature = bytes.fromhex(Signer(SigningKey(seed)).sign_hex(message))
    assert signature == SigningKey(seed).sign(message).signature
    SigningKey(seed).verify_key.verify(message, signature)  # raises when it is not a signature


def test_the_signer_refuses_what_is_not_bytes_as_pynacl_does() -> None:
    signer = Signer(SigningKey(b"\x07" * 32))
    with pytest.raises(TypeError):
        signer.sign_hex("text")  # type: ignore[arg-type]


def reference_input_values(value: Any) -> int:
    """The walk as it was written before its type shortcuts (isinstance on every value)."""
    count, text = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > compiler.CEL_MAX_INPUT_VALUES:
            raise CelError("CEL_MAX_INPUT_VALUES")
        if depth > compiler.CEL_MAX_INPUT_DEPTH:
            raise CelError("CEL_MAX_INPUT_DEPTH")
        if isinstance(item, str):
            text += len(item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                text += len(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        if text > compiler.CEL_MAX_INPUT_STRING_BYTES:
            raise CelError("CEL_MAX_INPUT_STRING_BYTES")
    return count


class Name(str):
    pass


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40),
    st.text(max_size=8).map(Name), st.binary(max_size=4),
)  # fmt: skip
inputs = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3).map(MappingProxyType),
    max_leaves=40,
)  # fmt: skip


def outcome(fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except CelError as exc:
        return str(exc).rsplit("(", 1)[-1].strip(")")


@given(inputs)
def test_the_cel_input_walk_counts_and_refuses_as_before(value: Any) -> None:
    assert outcome(cel_input_values, value) == outcome(reference_input_values, value)


def nested_tuples(depth: int) -> tuple[Any, ...]:
    value: tuple[Any, ...] = ()
    for _ in range(depth):
        value = (value,)
    return value


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        ([[]] * compiler.CEL_MAX_INPUT_VALUES, "CEL_MAX_INPUT_VALUES"),
        ({"s": Name("x" * (compiler.CEL_MAX_INPUT_STRING_BYTES + 1))}, "CEL_MAX_INPUT_STRING_BYTES"),
        (MappingProxyType({"k" * (compiler.CEL_MAX_INPUT_STRING_BYTES + 1): 1}), "CEL_MAX_INPUT_STRING_BYTES"),
        (nested_tuples(40), "CEL_MAX_INPUT_DEPTH"),
    ],
)  # fmt: skip
def test_each_limit_holds_for_other_types_too(value: Any, limit: str) -> None:
    assert outcome(cel_input_values, value) == outcome(reference_input_values, value) == limit


def refusal(fn: Any) -> Any:
    try:
        return fn()
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 bytes
        return type(exc)


@given(st.lists(st.text(st.characters(categories=None), max_size=12), min_size=9, max_size=9))
def test_the_decision_record_text_is_the_jcs_of_the_record(texts: list[str]) -> None:
    from helm_runbook.formats.canonical import canonical_json
    from helm_runbook.runtime.guardian import Decision
    from helm_runbook.runtime.kernel import decision_record, decision_record_json

    decision = Decision(*texts[:7])
    principal, args_hash = texts[7], texts[8]
    expected = refusal(lambda: canonical_json(decision_record(decision, principal, args_hash)))
    assert refusal(lambda: decision_record_json(decision, principal, args_hash)) == expected


@pytest.mark.parametrize("principal", [7, None, Name("a")])
def test_a_decision_record_field_of_another_type_is_canonicalised_as_before(principal: Any) -> None:
    from helm_runbook.formats.canonical import canonical_json
    from helm_runbook.runtime.guardian import Decision
    from helm_runbook.runtime.kernel import decision_record, decision_record_json

    decision = Decision("dec-1", "ALLOW", "", "", "file_read", "E1", "sha256:p")
    expected = canonical_json(decision_record(decision, principal, "sha256:a"))
    assert decision_record_json(decision, principal, "sha256:a") == expected
