"""Offline receipt verification: signatures against a caller-supplied key, and hash chains.

What a verifier does (docs/upstream-contract.md#receipt-verification): require ``receipt.v5``; rebuild the 13-key JCS preimage and
verify its Ed25519 signature with the trusted key (never the embedded ``public_key_set``); per
session, order by lamport, require the first ``prev_hash`` to be genesis and each next one to be
the chain hash of its predecessor. Every failure names the receipt and the check.
"""

from __future__ import annotations

import json
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
from helm_runbook.formats.keys import Signer
from helm_runbook.harness.results import StepReport
from helm_runbook.tools.client import Credentials, RuntimeClient

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ReceiptFailure:
    receipt_id: str
    session_id: str
    lamport_clock: int
    check: str  # signature | signature_version | causal_chain | format
    detail: str


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

    def __post_init__(self) -> None:
        self.ok = self.receipts > 0 and not self.failures
        self.rows = [
            [f.receipt_id, f.session_id, f.lamport_clock, f.check, f.detail] for f in self.failures
        ]
        self.summary = (
            f"{self.receipts} receipts in {self.sessions} sessions, "
            f"{len(self.failures)} failures, key {self.public_key_fingerprint}"
            if self.receipts
            else "no receipts to verify"
        )
        self.values = {"receipts": self.receipts, "sessions": self.sessions, "failures": len(self.failures),
                       "trust_root": self.public_key_fingerprint, **self.values}  # fmt: skip

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


def verify_receipts(items: Iterable[Mapping[str, Any]], public_key: str) -> ReceiptVerification:
    """Verify signatures and chains of ``items`` against ``public_key`` (64 hex)."""
    start = time.perf_counter()
    key = normalise_public_key(public_key)
    failures: list[ReceiptFailure] = []
    chains: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    count = 0
    for item in items:
        count += 1
        rid = str(item.get("receipt_id", "?"))
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
                    str(session),
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
                    f"expected {rc.SIGNATURE_VERSION}, found {item.get('signature_version')!r}",
                )
            )
        elif not rc.signature_valid(item, key):
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
        chains[session].append(item)
    for session, chain in chains.items():
        for receipt, why in rc.chain_problems(chain):
            rid = str(receipt.get("receipt_id", "?"))
            failures.append(
                ReceiptFailure(rid, session, int(receipt["lamport_clock"]), "causal_chain", why)
            )
    fingerprint = Signer.fingerprint_of(VerifyKey(bytes.fromhex(key)))
    return ReceiptVerification(receipts=count, sessions=len(chains), failures=failures,
                               public_key_fingerprint=fingerprint, seconds=time.perf_counter() - start)  # fmt: skip


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
    path = Path(source)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise InputError(
            f"cannot read {path}: {reason}", fix="pass a receipts JSON file or a URL"
        ) from exc
    try:
        return _receipts_of(json.loads(text), str(path))
    except json.JSONDecodeError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ReceiptInvalid(
            f"{path} is neither JSON nor JSON lines: {exc}",
            fix="save the body of GET /api/v1/receipts as-is",
        ) from exc


def _receipts_of(doc: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("receipts"), list):
        return list(doc["receipts"])
    if isinstance(doc, list):
        return list(doc)
    if isinstance(doc, dict) and "receipt_id" in doc:
        return [doc]
    raise ReceiptInvalid(
        f"{where} holds no receipts", fix="save the body of GET /api/v1/receipts as-is"
    )
