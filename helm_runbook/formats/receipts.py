"""receipt.v5: fields, the 13-key signed preimage, the chain hash, and their verification.

One module for both sides: the runtime issues receipts with these functions and the offline
verifier (``helm_runbook.tools.verify``) checks them with the same ones, so a change here is a change
to both (docs/upstream-contract.md#receipts).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helm_runbook.formats.canonical import (
    canonical_json,
    canonical_text,
    encode_string,
    sha256_hex,
)
from helm_runbook.formats.keys import Signer, verify_hex

SIGNATURE_VERSION = "receipt.v5"

# Exactly these keys, in any order (JCS sorts them); empty values stay present (docs/upstream-contract.md#receipt-signing).
PREIMAGE_KEYS = (
    "signature_version",
    "receipt_id",
    "decision_id",
    "effect_id",
    "status",
    "output_hash",
    "prev_hash",
    "lamport_clock",
    "args_hash",
    "verdict",
    "reason_code",
    "policy_hash",
    "session_id",
)

# The reference runtime's second signature (docs/upstream-contract.md#receipt-signing): the
# receipt.v5 preimage leaves executor_id, timestamp, metadata and the signer fields unsigned, so a
# chain's last receipt (which no successor's prev_hash covers) could be edited unnoticed. This one
# covers every field but itself; upstream verifiers ignore it as an unknown field.
ENVELOPE_SIGNATURE = "envelope_signature"
_ENVELOPE_CONTEXT = b"helm-receipt-envelope.v1\n"

_PREIMAGE_SORTED = tuple(sorted(PREIMAGE_KEYS))
_SEALED_HERE = frozenset({"public_key_set", "signature", ENVELOPE_SIGNATURE})  # texts seal writes
_PREIMAGE_LAMPORT = _PREIMAGE_SORTED.index("lamport_clock")

# Fields dropped from the chain-hash view besides empty ones (docs/upstream-contract.md#receipt-chain).
_CHAIN_EXCLUDED = frozenset({"transparency", "log_id", "leaf_index"})
_EMPTY = ("", None, 0, False)
GENESIS_PREV_HASHES = frozenset({"", "GENESIS", "0" * 64})
# ``"name":`` of the fields the runtime writes, ready to join (``seal``).
_NAMES = {
    name: canonical_text(name) + ":"
    for name in (*PREIMAGE_KEYS, "external_reference_id", "decision_hash", "blob_hash",
                 "timestamp", "executor_id", "metadata", "signature_profile",
                 "signature_algorithm", "key_id", "public_key_set", "signature", ENVELOPE_SIGNATURE)
}  # fmt: skip


def receipt_id_for(tenant_id: str, decision_id: str) -> str:
    """``rcpt-`` + hex SHA-256 of ``<len>:<tenant><len>:<decision_id>`` (tenant-scoped form)."""
    material = f"{len(tenant_id)}:{tenant_id}{len(decision_id)}:{decision_id}"
    return "rcpt-" + hashlib.sha256(material.encode()).hexdigest()


def causal_session_key(tenant_id: str, session_id: str) -> str:
    """Durable chain key: one chain per (tenant, session)."""
    return f"tenant:{len(tenant_id)}:{tenant_id}:session:{len(session_id)}:{session_id}"


def preimage(receipt: Mapping[str, Any]) -> bytes:
    """The JCS bytes that a receipt.v5 signature covers."""
    material = {key: receipt.get(key, "") for key in PREIMAGE_KEYS}
    material["signature_version"] = SIGNATURE_VERSION
    material["lamport_clock"] = int(receipt.get("lamport_clock") or 0)
    return canonical_json(material)


def _chain_keys(receipt: Mapping[str, Any]) -> list[Any]:
    """The keys of the chain-hash view: empty fields and transparency fields dropped."""
    return [
        key
        for key, value in receipt.items()
        if key not in _CHAIN_EXCLUDED and value not in _EMPTY and value != {}
    ]


def chain_hash(receipt: Mapping[str, Any]) -> str:
    """Hex SHA-256 of JCS(legacy view): empty fields and transparency fields dropped."""
    return sha256_hex(canonical_json({key: receipt[key] for key in _chain_keys(receipt)}))


def envelope_material(receipt: Mapping[str, Any]) -> bytes:
    """What ``envelope_signature`` covers: the JCS digest of every other field."""
    view = {key: value for key, value in receipt.items() if key != ENVELOPE_SIGNATURE}
    return _ENVELOPE_CONTEXT + hashlib.sha256(canonical_json(view)).digest()


def sign(receipt: dict[str, Any], signer: Signer) -> None:
    """Fill ``signature``, the signer fields and ``envelope_signature`` of ``receipt`` in place."""
    seal(receipt, signer)


def seal(receipt: dict[str, Any], signer: Signer) -> str:
    """``sign`` the receipt, then return its ``chain_hash`` (``seal_stored`` without the text)."""
    return seal_stored(receipt, signer)[0]


def seal_stored(receipt: dict[str, Any], signer: Signer) -> tuple[str, str]:
    """``sign`` the receipt, then return its ``chain_hash`` and its own JCS text (what the store
    writes: joined from the member texts already made, not a fourth serialisation of the
    receipt), canonicalising each field once.

    The JCS text of an object is its members' texts in key order, so the receipt.v5 preimage,
    the envelope view and the chain view are joined from one list of member texts instead of
    three canonicalisations of the receipt; where each member goes is worked out once per set
    of keys (``_layout``). The bytes signed and hashed are those of ``preimage``,
    ``envelope_material`` and ``chain_hash`` (a property test holds them equal); a receipt
    with a key that is not an ASCII string takes those functions themselves."""
    receipt["signature_version"] = SIGNATURE_VERSION
    receipt["signature_profile"] = "classical"
    receipt["signature_algorithm"] = "ed25519"
    receipt["key_id"] = signer.key_id
    public_key = signer.public_key_hex
    receipt["public_key_set"] = {"ed25519": public_key}
    layout = _layout(receipt)
    if layout is None:
        receipt["signature"] = signer.sign_hex(preimage(receipt))
        receipt[ENVELOPE_SIGNATURE] = signer.sign_hex(envelope_material(receipt))
        return chain_hash(receipt), canonical_text(receipt)
    quote = encode_string
    members = [  # '"key":value' of each field, in JCS order
        name + (quote(value) if type(value) is str else canonical_text(value))
        for name, value in zip(layout.names, layout.values(receipt), strict=True)
    ]
    signed, enveloped = layout.signature, layout.envelope
    # Into their places in key order: envelope_signature < public_key_set < signature.
    members.insert(enveloped, "")  # filled below
    members.insert(layout.public_key_set, _PUBLIC_KEY_SET + quote(public_key) + "}")
    members.insert(signed, "")
    material = [members[at] if at >= 0 else absent for at, absent in layout.preimage]
    material[_PREIMAGE_LAMPORT] = _NAMES["lamport_clock"] + canonical_text(
        int(receipt.get("lamport_clock") or 0)
    )
    signature = signer.sign_hex(_object(material))
    receipt["signature"] = signature
    members[signed] = _NAMES["signature"] + quote(signature)
    digest = hashlib.sha256(_object(members[:enveloped] + members[enveloped + 1 :])).digest()
    envelope = signer.sign_hex(_ENVELOPE_CONTEXT + digest)
    receipt[ENVELOPE_SIGNATURE] = envelope
    members[enveloped] = _NAMES[ENVELOPE_SIGNATURE] + quote(envelope)
    kept = members if layout.chain is None else [members[at] for at in layout.chain]
    chain = sha256_hex(_object([text for text in kept if not text.endswith(_EMPTY_MEMBER)]))
    return chain, "{" + ",".join(members) + "}"


# A member whose value is empty (``_EMPTY`` or ``{}``) ends so, and no other does: a value's JCS
# text is "", null, 0, false or {} exactly then, and no other JSON text ends with these after
# ':' (a string's quotes inside it are escaped, an object ends with '}', a list with ']').
_EMPTY_MEMBER = (':""', ":null", ":0", ":false", ":{}")
_PUBLIC_KEY_SET = _NAMES["public_key_set"] + '{"ed25519":'


@dataclass(frozen=True)
class _Layout:
    """Where each member goes in the texts ``seal_stored`` joins, for one set of keys."""

    values: Callable[[Mapping[str, Any]], Sequence[Any]]  # the fields seal does not write
    names: tuple[str, ...]  # '"key":' of each of them, in JCS order
    public_key_set: int  # where the members seal writes go among all of them
    signature: int
    envelope: int
    preimage: tuple[tuple[int, str], ...]  # per preimage key: its member, or -1 and '"key":""'
    chain: tuple[int, ...] | None  # the members the chain view keeps, None for all


_LAYOUTS: dict[tuple[str, ...], _Layout] = {}
_MAX_LAYOUTS = 64  # the kernel's receipts have one set of keys; any other is worked out per call


def _layout(receipt: Mapping[Any, Any]) -> _Layout | None:
    """The layout of ``receipt``'s keys; None when one is not an ASCII str (JCS then sorts by
    UTF-16 code units, which Python's sort does not: the reference functions seal it)."""
    keys = tuple(receipt)
    layout = _LAYOUTS.get(keys)  # only ASCII str keys are stored, and what equals them
    if layout is not None:
        return layout
    if set(map(type, keys)) != {str} or not "".join(keys).isascii():
        return None
    fields = sorted(key for key in keys if key not in _SEALED_HERE)
    order = sorted([*fields, *_SEALED_HERE])
    at = {key: index for index, key in enumerate(order)}
    layout = _Layout(
        values=_getter(fields),
        names=tuple(_NAMES.get(key) or canonical_text(key) + ":" for key in fields),
        public_key_set=at["public_key_set"],
        signature=at["signature"],
        envelope=at[ENVELOPE_SIGNATURE],
        preimage=tuple((at.get(key, -1), _NAMES[key] + '""') for key in _PREIMAGE_SORTED),
        chain=None
        if _CHAIN_EXCLUDED.isdisjoint(order)
        else tuple(at[key] for key in order if key not in _CHAIN_EXCLUDED),
    )
    if len(_LAYOUTS) < _MAX_LAYOUTS:
        _LAYOUTS[keys] = layout
    return layout


def _getter(keys: list[str]) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
    """The values of ``keys`` in one C call (``itemgetter`` of one key gives no tuple)."""
    if len(keys) == 1:
        return lambda mapping: (mapping[keys[0]],)
    if not keys:
        return lambda mapping: ()
    return operator.itemgetter(*keys)


def _object(members: list[str]) -> bytes:
    """The JCS bytes of an object from its sorted ``"key":value`` member texts."""
    return ("{" + ",".join(members) + "}").encode("utf-8")


def envelope_valid(receipt: Mapping[str, Any], public_key_hex: str) -> bool:
    """The envelope signature verifies against the trusted key: no field was edited."""
    signature = receipt.get(ENVELOPE_SIGNATURE)
    if not isinstance(signature, str) or len(signature) != 128:
        return False
    try:
        material = envelope_material(receipt)
    except (TypeError, ValueError, RecursionError):
        return False
    return verify_hex(public_key_hex, material, signature)


def signature_valid(receipt: Mapping[str, Any], public_key_hex: str) -> bool:
    """Verify against a caller-supplied key; the embedded ``public_key_set`` is no trust root."""
    if receipt.get("signature_version") != SIGNATURE_VERSION:
        return False
    signature = receipt.get("signature")
    if not isinstance(signature, str) or len(signature) != 128:
        return False
    return verify_hex(public_key_hex, preimage(receipt), signature)


def chain_problems(chain: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str]]:
    """What is wrong with one session's chain, ordered by lamport (docs/upstream-contract.md#receipt-verification): the first
    receipt must be lamport 1 with a genesis ``prev_hash``; each next one must follow by exactly
    one and link to the chain hash of its predecessor. Returns (receipt, why) pairs."""
    problems: list[tuple[Mapping[str, Any], str]] = []
    previous: Mapping[str, Any] | None = None
    for receipt in sorted(chain, key=lambda r: int(r.get("lamport_clock") or 0)):
        lamport = receipt.get("lamport_clock")
        if previous is None:
            if lamport != 1:
                problems.append(
                    (
                        receipt,
                        f"chain starts at lamport {lamport}, not 1: earlier receipts are missing",
                    )
                )
            elif receipt.get("prev_hash", "") not in GENESIS_PREV_HASHES:
                problems.append((receipt, "first receipt's prev_hash is not genesis"))
        else:
            expected = int(previous.get("lamport_clock") or 0) + 1
            if lamport != expected:
                what = (
                    "duplicate lamport"
                    if isinstance(lamport, int) and lamport < expected
                    else "lamport gap"
                )
                problems.append(
                    (receipt, f"{what}: expected {expected} after {previous.get('receipt_id')}")
                )
            elif receipt.get("prev_hash") != chain_hash(previous):
                problems.append((receipt, f"prev_hash does not match the chain hash of {previous.get('receipt_id')} "
                                          f"(lamport {previous.get('lamport_clock')})"))  # fmt: skip
        previous = receipt
    return problems
