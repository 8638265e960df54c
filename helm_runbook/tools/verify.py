"""Offline receipt verification: signatures against a caller-supplied key, and hash chains.

What a verifier does (docs/upstream-contract.md#receipt-verification): require ``receipt.v5``; rebuild the 13-key JCS preimage and
verify its Ed25519 signature with the trusted key (never the embedded ``public_key_set``), and
the envelope signature over every other field (so an edit anywhere fails, the last receipt's
``executor_id`` or ``timestamp`` included); per session, order by lamport, require the first
``prev_hash`` to be genesis and each next one to be the chain hash of its predecessor. Each
chain's length and head (the chain hash of its last receipt) are reported, and checked against
``expect_head`` / ``expect_count`` so a truncated chain is noticed. Every failure names the
receipt and the check; an unreadable or malformed input is one ``InputError``.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from nacl.signing import VerifyKey

from helm_runbook.errors import InputError, ReceiptInvalid
from helm_runbook.formats import receipts as rc
from helm_runbook.formats.json_reader import parse_json
from helm_runbook.formats.keys import Signer
from helm_runbook.harness.results import StepReport
from helm_runbook.tools.client import Credentials, RuntimeClient

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ReceiptFailure:
    receipt_id: str
    session_id: str
    lamport_clock: int
    check: str  # signature | envelope | signature_version | causal_chain | format | head
    detail: str


@dataclass(frozen=True)
class ChainEnd:
    """One session's chain as verified: how many receipts, and the chain hash of the last."""

    count: int
    head: str


RECEIPT_COLUMNS = ("receipt", "session", "lamport", "check", "detail")


@dataclass(kw_only=True)
class ReceiptVerification(StepReport):
    """Outcome of verifying a set of receipts, as a step's result: ``ok`` only when every check
    passed, one table row per failure, and the counts as recorded values."""

    step: str = "receipts.verify"
    title: str = "receipt verification"
    columns: Sequence[str] = RECEIPT_COLUMNS
    receipts: int = 0
    sessions: int = 0
    failures: list[ReceiptFailure] = field(default_factory=list)
    public_key_fingerprint: str = ""
    chains: dict[str, ChainEnd] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ok = self.receipts > 0 and not self.failures
        self.rows = [
            [f.receipt_id, f.session_id, f.lamport_clock, f.check, f.detail] for f in self.failures
        ]
        ends = ""
        if len(self.chains) == 1:
            (end,) = self.chains.values()
            ends = f"; chain length {end.count}, head {end.head}"
        self.summary = (
            f"{self.receipts} receipts in {self.sessions} sessions, "
            f"{len(self.failures)} failures, key {self.public_key_fingerprint}{ends}"
            if self.receipts
            else "no receipts to verify"
        )
        heads = {s: {"count": e.count, "head": e.head} for s, e in sorted(self.chains.items())}
        self.values = {"receipts": self.receipts, "sessions": self.sessions, "failures": len(self.failures),
                       "trust_root": self.public_key_fingerprint, "chains": heads, **self.values}  # fmt: skip

    def raise_for_failures(self) -> None:
        if not self.ok:
            first = self.failures[0] if self.failures else None
            seen = (
                f"{first.check} failed for {first.receipt_id}: {first.detail}"
                if first
                else "no receipts"
            )
            raise ReceiptInvalid(
                f"receipt verification failed: {seen} ({len(self.failures)} failures)",
                fix="check that --public-key is the runtime's root.pub (trust root), and that the "
                "receipts come unmodified from GET /api/v1/receipts",
            )


def normalise_public_key(public_key: str) -> str:
    key = public_key.strip().lower()
    if not _HEX64.fullmatch(key):
        raise InputError(
            f"public key is not 64 hex characters (got {len(key)} characters"
            + (", not all hex)" if re.search(r"[^0-9a-f]", key) else ")"),
            fix="pass the runtime's trust root: the hex in <data-dir>/root.pub or the "
            "'trust root ready' log line",
        )
    return key


def _safely(check: Any, *args: Any) -> Any:
    """A check on untrusted values: one that cannot even be computed (an integer beyond 2^53, a
    nesting JCS refuses) has failed, it is no crash."""
    try:
        return check(*args)
    except (TypeError, ValueError, RecursionError):
        return None


def verify_receipts(
    items: Iterable[Mapping[str, Any]],
    public_key: str,
    *,
    expect_head: str | None = None,
    expect_count: int | None = None,
) -> ReceiptVerification:
    """Verify signatures and chains of ``items`` against ``public_key`` (64 hex); with
    ``expect_head`` / ``expect_count``, the (single) chain must end at that chain hash and hold
    that many receipts, so a chain cut short is noticed."""
    start = time.perf_counter()
    key = normalise_public_key(public_key)
    failures: list[ReceiptFailure] = []
    chains: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    count = 0
    for item in items:
        count += 1
        rid = str(item.get("receipt_id", "?"))[:200]
        session = item.get("session_id")
        lamport = item.get("lamport_clock")
        if (
            not isinstance(session, str)
            or not isinstance(lamport, int)
            or isinstance(lamport, bool)
        ):
            failures.append(
                ReceiptFailure(
                    rid,
                    str(session)[:200],
                    -1,
                    "format",
                    "session_id (string) and lamport_clock (integer) are required",
                )
            )
            continue
        if item.get("signature_version") != rc.SIGNATURE_VERSION:
            failures.append(
                ReceiptFailure(
                    rid,
                    session,
                    lamport,
                    "signature_version",
                    f"expected {rc.SIGNATURE_VERSION}, found {str(item.get('signature_version'))[:40]!r}",
                )
            )
        elif not _safely(rc.signature_valid, item, key):
            failures.append(
                ReceiptFailure(
                    rid,
                    session,
                    lamport,
                    "signature",
                    "Ed25519 signature does not verify over the receipt.v5 preimage "
                    "with the trusted key (a signed field changed, or another key signed it)",
                )
            )
        elif not _safely(rc.envelope_valid, item, key):
            failures.append(
                ReceiptFailure(
                    rid,
                    session,
                    lamport,
                    "envelope",
                    f"{rc.ENVELOPE_SIGNATURE} is missing or does not verify over the whole "
                    "receipt: a field outside the receipt.v5 preimage (executor_id, timestamp, "
                    "metadata, ...) was edited",
                )
            )
        chains[session].append(item)
    ends: dict[str, ChainEnd] = {}
    for session, chain in chains.items():
        problems = _safely(rc.chain_problems, chain)
        if problems is None:
            problems = [(chain[0], "a receipt of this chain cannot be hashed (JCS refuses it)")]
        for receipt, why in problems:
            rid = str(receipt.get("receipt_id", "?"))[:200]
            failures.append(
                ReceiptFailure(rid, session, int(receipt["lamport_clock"]), "causal_chain", why)
            )
        last = max(chain, key=lambda r: int(r["lamport_clock"]))
        ends[session] = ChainEnd(len(chain), _safely(rc.chain_hash, last) or "")
    failures += _expectations(ends, expect_head, expect_count)
    fingerprint = Signer.fingerprint_of(VerifyKey(bytes.fromhex(key)))
    return ReceiptVerification(receipts=count, sessions=len(chains), failures=failures,
                               public_key_fingerprint=fingerprint, chains=ends,
                               seconds=time.perf_counter() - start)  # fmt: skip


def _expectations(
    ends: Mapping[str, ChainEnd], expect_head: str | None, expect_count: int | None
) -> list[ReceiptFailure]:
    """The known head and length of the chain, compared with what was verified."""
    if expect_head is None and expect_count is None:
        return []
    if len(ends) != 1:
        raise InputError(
            f"--expect-head/--expect-count check one session's chain; the input holds {len(ends)}",
            fix="verify one session at a time (a URL with ?session_id=, or a file of one session)",
        )
    ((session, end),) = ends.items()
    failures = []
    if expect_head is not None and end.head != expect_head.lower().removeprefix("sha256:"):
        failures.append(ReceiptFailure("-", session, end.count, "head",
                                       f"chain ends at {end.head}, expected {expect_head}: "
                                       "receipts are missing from the end, or it was rewritten"))  # fmt: skip
    if expect_count is not None and end.count != expect_count:
        failures.append(ReceiptFailure("-", session, end.count, "head",
                                       f"chain holds {end.count} receipts, expected {expect_count}"))  # fmt: skip
    return failures


def load_receipts(
    source: str, *, credentials: Credentials | None = None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Receipts from a file (JSON list, ``{"receipts": [...]}``, one receipt, or JSON lines) or a URL.

    A URL of ``GET /api/v1/receipts`` (its query as filters) is followed page by page through
    ``next_cursor``, with ``credentials`` (the admin key and tenant headers).
    """
    if source.startswith(("http://", "https://")):
        url = urlsplit(source)
        base, marker, _ = urlunsplit(url._replace(query="", fragment="")).partition(
            "/api/v1/receipts"
        )
        if not marker:
            raise ReceiptInvalid(
                f"{source} is not a receipts listing URL",
                fix="pass the runtime's GET /api/v1/receipts URL, e.g. http://127.0.0.1:8080/api/v1/receipts",
            )
        with RuntimeClient(base, credentials=credentials, timeout=timeout) as client:
            return client.receipts(**dict(parse_qsl(url.query)))
    return _receipts_from_file(Path(source))


MAX_RECEIPTS_FILE_BYTES = 64 << 20  # 10,000 receipts of the runtime's largest are under 160 MiB
MAX_RECEIPTS_IN_FILE = 100_000
_FILE_FIX = (
    'save the body of GET /api/v1/receipts as-is (a JSON list, {"receipts": [...]}, or JSON lines)'
)


def _receipts_from_file(path: Path) -> list[dict[str, Any]]:
    """Receipt objects from a file, read under a byte cap with the runtime's bounded JSON reader
    (depth, sizes, duplicate keys); anything else is one InputError naming what is wrong."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_RECEIPTS_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror}", fix="pass a receipts JSON file or a URL"
        ) from exc
    if len(data) > MAX_RECEIPTS_FILE_BYTES:
        raise InputError(f"{path} is larger than {MAX_RECEIPTS_FILE_BYTES} bytes",
                         fix="verify one session at a time (GET /api/v1/receipts?session_id=...)")  # fmt: skip
    try:
        items = _receipts_of(parse_json(data), str(path))
    except (ValueError, UnicodeDecodeError) as whole:
        lines = [line for line in data.splitlines() if line.strip()]
        if len(lines) < 2:
            raise InputError(f"{path} is not valid JSON: {whole}", fix=_FILE_FIX) from None
        items = []
        for number, line in enumerate(lines, 1):
            try:
                items.append(parse_json(line))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(f"{path} is neither JSON nor JSON lines: line {number}: {exc}",
                                 fix=_FILE_FIX) from None  # fmt: skip
    if len(items) > MAX_RECEIPTS_IN_FILE:
        raise InputError(f"{path} holds more than {MAX_RECEIPTS_IN_FILE} receipts",
                         fix="verify one session at a time")  # fmt: skip
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InputError(
                f"{path}: receipt {number} is a JSON {_json_kind(item)}, not a receipt object",
                fix=_FILE_FIX,
            )
    return items


def _json_kind(value: Any) -> str:
    return {str: "string", list: "array", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _receipts_of(doc: Any, where: str) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("receipts"), list):
        return list(doc["receipts"])
    if isinstance(doc, list):
        return list(doc)
    if isinstance(doc, dict) and "receipt_id" in doc:
        return [doc]
    raise InputError(f"{where} holds no receipts", fix=_FILE_FIX)
