"""``receipts.seal`` signs and chains from member texts joined once; it must give the bytes the
reference functions (``preimage``, ``envelope_material``, ``chain_hash``) give, for any receipt."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from helm_runbook.formats import receipts as rc
from helm_runbook.formats.canonical import canonical_json
from helm_runbook.formats.keys import Signer

ROOT = Signer(SigningKey(b"\x03" * 32))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),  # past 2^53 JCS refuses, both ways
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip
known = st.sampled_from((*rc.PREIMAGE_KEYS, "metadata", "timestamp", "executor_id", "transparency",
                         "signature", rc.ENVELOPE_SIGNATURE))  # fmt: skip
ascii_names = known | st.text(alphabet=st.characters(max_codepoint=127), max_size=8)


def reference(receipt: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """What ``sign`` then ``chain_hash`` did before ``seal``: three canonicalisations."""
    receipt["signature_version"] = rc.SIGNATURE_VERSION
    receipt["signature_profile"] = "classical"
    receipt["signature_algorithm"] = "ed25519"
    receipt["key_id"] = ROOT.key_id
    receipt["public_key_set"] = {"ed25519": ROOT.public_key_hex}
    receipt["signature"] = ROOT.sign_hex(rc.preimage(receipt))
    receipt[rc.ENVELOPE_SIGNATURE] = ROOT.sign_hex(rc.envelope_material(receipt))
    return receipt, rc.chain_hash(receipt)


def outcome(fn: Any, receipt: dict[str, Any]) -> Any:
    try:
        return fn(receipt)
    except (TypeError, ValueError, UnicodeError) as exc:  # e.g. an integer past 2^53, a surrogate
        return type(exc).__name__


def check(fields: dict[str, Any]) -> None:
    sealed = outcome(lambda r: (r, rc.seal(r, ROOT)), copy.deepcopy(fields))
    expected = outcome(reference, copy.deepcopy(fields))
    if isinstance(expected, str):  # the reference refused the receipt: seal refuses it too
        assert isinstance(sealed, str)
    else:
        assert sealed == expected
        # seal_stored also returns the receipt's own JCS text, which the store writes
        stored = copy.deepcopy(fields)
        chain, text = rc.seal_stored(stored, ROOT)
        assert (stored, chain) == expected
        assert text.encode("utf-8") == canonical_json(stored)


@settings(deadline=None)  # no timed assertions: a busy machine is no failure
@given(st.dictionaries(ascii_names, values, max_size=10))
def test_seal_signs_and_chains_exactly_as_the_reference_functions(fields: dict[str, Any]) -> None:
    check(fields)


@settings(deadline=None)
@given(st.dictionaries(ascii_names | st.text(max_size=4), values, max_size=6))
def test_a_receipt_with_other_keys_seals_as_the_reference_too(fields: dict[str, Any]) -> None:
    check(fields)


def test_a_runtime_receipt_seals_as_the_reference_and_verifies() -> None:
    receipt = {
        "receipt_id": "rcpt-1", "decision_id": "dec-1", "effect_id": "file_read",
        "external_reference_id": "", "status": "ALLOW", "verdict": "ALLOW", "reason_code": "",
        "decision_hash": "sha256:d", "output_hash": "sha256:d", "blob_hash": "sha256:a",
        "args_hash": "sha256:a", "prev_hash": "", "lamport_clock": 1,
        "timestamp": "2026-12-07T15:22:40.36Z", "executor_id": "system-admin",
        "policy_hash": "sha256:p", "session_id": "s",
        "metadata": {"source": "api.evaluate", "action": "file_read", "resource": "E1",
                     "reason": "", "args_hash": "sha256:a", "claimed_principal": "ü\u2028\"\\"},
    }  # fmt: skip
    sealed = copy.deepcopy(receipt)
    chain = rc.seal(sealed, ROOT)
    assert (sealed, chain) == reference(copy.deepcopy(receipt))
    assert rc.signature_valid(sealed, ROOT.public_key_hex)
    assert rc.envelope_valid(sealed, ROOT.public_key_hex)
    sealed["metadata"]["resource"] = "E2"  # a field only the envelope signature covers
    assert not rc.envelope_valid(sealed, ROOT.public_key_hex)


RUNTIME_KEYS = ("receipt_id", "decision_id", "effect_id", "external_reference_id", "status",
                "verdict", "reason_code", "decision_hash", "output_hash", "blob_hash", "args_hash",
                "prev_hash", "lamport_clock", "timestamp", "executor_id", "policy_hash",
                "session_id", "metadata")  # fmt: skip


@settings(deadline=None)
@given(st.fixed_dictionaries({key: values for key in RUNTIME_KEYS}))
def test_receipts_with_one_set_of_keys_seal_as_the_reference_whatever_their_values(
    fields: dict[str, Any],
) -> None:
    """Where each member goes is worked out once per set of keys: every later receipt with
    those keys (empty, null, zero, nested or refused values) reuses it."""
    check(fields)
