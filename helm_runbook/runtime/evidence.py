"""Evidence packs: a sealed, reproducible tar.gz of receipts, and its verification (docs/upstream-contract.md#evidence).

Layout::

    receipts/<receipt_id>.json          one receipt each (the transport JSON)
    manifest.json                       {version, exported_at (epoch), session_id, file_hashes}
    00_INDEX.json                       {version, session_id, entry_count, manifest_sha256,
                                         merkle_root, receipt_public_key, evidence_public_key}
    07_ATTESTATIONS/evidence_pack.sig   hex Ed25519 signature over the bytes of 00_INDEX.json

The archive is byte-for-byte reproducible (sorted names, zero mtimes and owners, gzip mtime 0),
so ``X-Helm-Evidence-Hash`` identifies the content. Verification names the file and the check
that fails: ``signatures`` (receipt signatures and the seal), ``causal_chain`` (lamport order and
prev_hash links) and ``policy_compliance`` (manifest hashes, no unlisted files, and verdicts that
agree with their reason codes).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helm_runbook.runtime import receipts as rc
from helm_runbook.runtime.keys import Signer, verify_hex

MAX_RECEIPTS = 10_000
MAX_PACK_BYTES = 32 << 20
MANIFEST, INDEX, SEAL = "manifest.json", "00_INDEX.json", "07_ATTESTATIONS/evidence_pack.sig"
EPOCH = "1970-01-01T00:00:00Z"


def merkle_root(leaves: Sequence[bytes]) -> str:
    """RFC 6962 Merkle tree hash over ``leaves`` (hex); empty tree hashes the empty string."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def _chain_order(receipts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipts ordered by (session, lamport): the order the Merkle root is taken over."""
    return sorted(
        receipts, key=lambda r: (str(r.get("session_id")), int(r.get("lamport_clock") or 0))
    )


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def build_pack(
    receipts: Sequence[dict[str, Any]],
    *,
    session_id: str,
    receipt_public_key: str,
    evidence_signer: Signer,
) -> tuple[bytes, str]:
    """The tar.gz bytes and ``sha256:<hex>`` of a sealed pack of ``receipts`` (oldest first)."""
    files: dict[str, bytes] = {}
    for receipt in receipts:
        files[f"receipts/{receipt['receipt_id']}.json"] = _json_bytes(receipt)
    manifest = {
        "version": 1,
        "exported_at": EPOCH,
        "session_id": session_id,
        "file_hashes": {
            name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())
        },
    }
    files[MANIFEST] = _json_bytes(manifest)
    index = {
        "version": 1,
        "session_id": session_id,
        "entry_count": len(receipts),
        "manifest_sha256": hashlib.sha256(files[MANIFEST]).hexdigest(),
        "merkle_root": merkle_root(
            [bytes.fromhex(rc.chain_hash(r)) for r in _chain_order(receipts)]
        ),
        "receipt_public_key": receipt_public_key,
        "evidence_public_key": evidence_signer.public_key_hex,
    }
    files[INDEX] = _json_bytes(index)
    files[SEAL] = (evidence_signer.sign_hex(files[INDEX]) + "\n").encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    packed = gzip.compress(raw.getvalue(), mtime=0)
    return packed, "sha256:" + hashlib.sha256(packed).hexdigest()


@dataclass
class PackVerification:
    """The VerificationResult JSON of the openapi subset, with errors naming file and check."""

    checks: dict[str, str] = field(
        default_factory=lambda: {
            "signatures": "PASS",
            "causal_chain": "PASS",
            "policy_compliance": "PASS",
        }
    )
    errors: list[str] = field(default_factory=list)
    entry_count: int = 0
    merkle: str = ""
    manifest_root_hash: str = ""

    def fail(self, check: str, where: str, why: str) -> None:
        self.checks[check] = "FAIL"
        self.errors.append(f"{check}: {where}: {why}")

    @property
    def verdict(self) -> str:
        return (
            "PASS" if all(v == "PASS" for v in self.checks.values()) and not self.errors else "FAIL"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "checks": dict(self.checks),
            "roots": {
                "manifest_root_hash": self.manifest_root_hash,
                "merkle_root": self.merkle,
                "entry_count": self.entry_count,
            },
            "errors": list(self.errors),
        }


def _read_members(pack: bytes, result: PackVerification) -> dict[str, bytes] | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(pack), mode="r:gz") as tar:
            files: dict[str, bytes] = {}
            for member in tar.getmembers():
                if not member.isfile():
                    result.fail("policy_compliance", member.name, "not a regular file")
                    continue
                extracted = tar.extractfile(member)
                files[member.name] = extracted.read() if extracted else b""
            return files
    except (tarfile.TarError, OSError, EOFError) as exc:
        result.fail("policy_compliance", "archive", f"not a readable tar.gz ({exc})")
        return None


def verify_pack(
    pack: bytes, *, receipt_public_key: str, evidence_public_key: str
) -> PackVerification:
    """Verify a pack against trusted keys (never the keys it carries)."""
    result = PackVerification()
    if len(pack) > MAX_PACK_BYTES:
        result.fail("policy_compliance", "archive", f"larger than {MAX_PACK_BYTES} bytes")
        return result
    files = _read_members(pack, result)
    if files is None:
        return result
    for required in (MANIFEST, INDEX, SEAL):
        if required not in files:
            result.fail("policy_compliance", required, "missing from the pack")
    if result.errors:
        return result
    seal = files[SEAL].decode(errors="replace").strip()
    if not verify_hex(evidence_public_key, files[INDEX], seal):
        result.fail(
            "signatures",
            SEAL,
            "seal does not verify over 00_INDEX.json with the trusted evidence key",
        )
    try:
        index = json.loads(files[INDEX])
        manifest = json.loads(files[MANIFEST])
        hashes: dict[str, str] = manifest["file_hashes"]
    except (ValueError, KeyError, TypeError) as exc:
        result.fail("policy_compliance", MANIFEST, f"unreadable manifest or index ({exc})")
        return result
    result.manifest_root_hash = hashlib.sha256(files[MANIFEST]).hexdigest()
    if index.get("manifest_sha256") != result.manifest_root_hash:
        result.fail(
            "policy_compliance", MANIFEST, "sha256 differs from the one sealed in 00_INDEX.json"
        )
    for name, data in sorted(files.items()):
        if name in (MANIFEST, INDEX, SEAL):
            continue
        if name not in hashes:
            result.fail("policy_compliance", name, "file is not listed in manifest.json")
        elif hashlib.sha256(data).hexdigest() != hashes[name]:
            result.fail("policy_compliance", name, "sha256 differs from manifest.json")
    for name in sorted(set(hashes) - set(files)):
        result.fail("policy_compliance", name, "listed in manifest.json but missing")
    chain: list[dict[str, Any]] = []
    for name in sorted(n for n in files if n.startswith("receipts/")):
        try:
            receipt = json.loads(files[name])
        except ValueError:
            result.fail("signatures", name, "not valid JSON")
            continue
        if not rc.signature_valid(receipt, receipt_public_key):
            result.fail(
                "signatures", name, "receipt signature does not verify with the trusted key"
            )
        verdict, code = receipt.get("verdict"), receipt.get("reason_code", "")
        if (verdict == "ALLOW") != (code == "") or verdict not in ("ALLOW", "DENY", "ESCALATE"):
            result.fail(
                "policy_compliance",
                name,
                f"verdict {verdict!r} disagrees with reason_code {code!r}",
            )
        if receipt.get("status") != verdict:
            result.fail("policy_compliance", name, "status differs from verdict")
        chain.append(receipt)
    result.entry_count = len(chain)
    if index.get("entry_count") != len(chain):
        result.fail(
            "policy_compliance",
            INDEX,
            f"entry_count {index.get('entry_count')} but {len(chain)} receipts",
        )
    by_session: dict[str, list[dict[str, Any]]] = {}
    for receipt in chain:
        by_session.setdefault(str(receipt.get("session_id")), []).append(receipt)
    for session, items in sorted(by_session.items()):
        for receipt, why in rc.chain_problems(items):
            result.fail(
                "causal_chain",
                f"receipts/{receipt.get('receipt_id')}.json",
                f"session {session}: {why}",
            )
    ordered = _chain_order(chain)
    result.merkle = merkle_root([bytes.fromhex(rc.chain_hash(r)) for r in _chain_order(ordered)])
    if index.get("merkle_root") != result.merkle:
        result.fail("causal_chain", INDEX, "merkle_root differs from the receipts in the pack")
    return result


def replay_check(pack: bytes, result: PackVerification) -> None:
    """The ``replay`` check: each receipt's bindings agree (output_hash = decision_hash, the
    metadata's args_hash = args_hash, status = verdict), so the decision can be replayed from it."""
    result.checks["replay"] = "PASS"
    files = _read_members(pack, PackVerification()) or {}
    for name in sorted(n for n in files if n.startswith("receipts/")):
        try:
            receipt = json.loads(files[name])
        except ValueError:
            result.fail("replay", name, "not valid JSON")
            continue
        metadata = receipt.get("metadata") or {}
        if receipt.get("decision_hash") and receipt.get("output_hash") != receipt.get(
            "decision_hash"
        ):
            result.fail("replay", name, "output_hash is not the decision_hash")
        if metadata.get("args_hash") not in (None, receipt.get("args_hash")):
            result.fail("replay", name, "metadata.args_hash differs from args_hash")
