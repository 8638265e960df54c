"""Evidence packs: sealed, reproducible, and any changed byte fails naming the file and check."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import Any

import pytest
from nacl.signing import SigningKey

from helm_runbook.formats import receipts as rc
from helm_runbook.formats.evidence import INDEX, MANIFEST, SEAL, build_pack, verify_pack
from helm_runbook.formats.keys import Signer

ROOT = Signer(SigningKey(b"\x01" * 32))
EVIDENCE = Signer(SigningKey(b"\x02" * 32), key_id="evidence")


def _chain(session: str, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev = ""
    for i in range(1, n + 1):
        receipt = {
            "receipt_id": f"rcpt-{session}-{i}", "decision_id": f"dec-{i}", "effect_id": "file_read",
            "status": "DENY", "verdict": "DENY", "reason_code": "PDP_DENY", "output_hash": "sha256:o",
            "args_hash": "sha256:a", "policy_hash": "sha256:p", "session_id": session,
            "lamport_clock": i, "prev_hash": prev, "metadata": {"reason": "PDP_DENY (ref=helm:x)"},
        }  # fmt: skip
        rc.sign(receipt, ROOT)
        prev = rc.chain_hash(receipt)
        out.append(receipt)
    return out


def _pack(receipts: list[dict[str, Any]]) -> bytes:
    return build_pack(
        receipts, session_id="", receipt_public_key=ROOT.public_key_hex, evidence_signer=EVIDENCE
    )[0]


def _verify(pack: bytes) -> dict[str, Any]:
    return verify_pack(
        pack, receipt_public_key=ROOT.public_key_hex, evidence_public_key=EVIDENCE.public_key_hex
    ).as_json()


def _files(pack: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(pack), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _repack(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


RECEIPTS = _chain("a", 3) + _chain("b", 2)


def test_pack_verifies_and_is_reproducible() -> None:
    pack, digest = build_pack(
        RECEIPTS, session_id="", receipt_public_key=ROOT.public_key_hex, evidence_signer=EVIDENCE
    )
    assert (
        digest
        == build_pack(
            RECEIPTS,
            session_id="",
            receipt_public_key=ROOT.public_key_hex,
            evidence_signer=EVIDENCE,
        )[1]
    )
    result = _verify(pack)
    assert result["verdict"] == "PASS", result["errors"]
    assert result["roots"]["entry_count"] == 5
    assert set(_files(pack)) == {
        MANIFEST,
        INDEX,
        SEAL,
        *(f"receipts/{r['receipt_id']}.json" for r in RECEIPTS),
    }


def _flip_byte(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.mark.parametrize(
    ("target", "check"),
    [
        ("receipts/rcpt-a-2.json", "policy_compliance"),  # manifest hash no longer matches
        (MANIFEST, "policy_compliance"),
        (INDEX, "signatures"),
        (SEAL, "signatures"),
    ],
)
def test_any_changed_byte_fails_naming_file_and_check(target: str, check: str) -> None:
    files = _files(_pack(RECEIPTS))
    files[target] = _flip_byte(files[target])
    result = _verify(_repack(files))
    assert result["verdict"] == "FAIL"
    assert result["checks"][check] == "FAIL"
    assert any(target in error for error in result["errors"]), result["errors"]


def test_a_consistently_rewritten_receipt_still_fails_its_signature() -> None:
    """An attacker who also fixes the manifest cannot forge the receipt signature or the seal."""
    files = _files(_pack(RECEIPTS))
    receipt = json.loads(files["receipts/rcpt-a-2.json"])
    receipt["verdict"] = receipt["status"] = "ALLOW"
    receipt["reason_code"] = ""
    files["receipts/rcpt-a-2.json"] = json.dumps(receipt).encode()
    result = _verify(_repack(files))
    assert result["checks"]["signatures"] == "FAIL"
    assert any("receipts/rcpt-a-2.json" in e and "signature" in e for e in result["errors"])


def test_removed_receipt_breaks_the_chain_and_the_manifest() -> None:
    files = _files(_pack(RECEIPTS))
    del files["receipts/rcpt-a-2.json"]
    result = _verify(_repack(files))
    assert result["checks"]["causal_chain"] == "FAIL"
    assert result["checks"]["policy_compliance"] == "FAIL"


def test_unlisted_file_and_wrong_keys_fail() -> None:
    files = _files(_pack(RECEIPTS))
    files["receipts/extra.json"] = b"{}"
    assert any("not listed" in e for e in _verify(_repack(files))["errors"])
    other = Signer(SigningKey(b"\x03" * 32)).public_key_hex
    result = verify_pack(
        _pack(RECEIPTS), receipt_public_key=other, evidence_public_key=other
    ).as_json()
    assert result["checks"]["signatures"] == "FAIL"


def test_garbage_is_reported_not_raised() -> None:
    result = _verify(b"not a tarball")
    assert result["verdict"] == "FAIL"
    assert "archive" in result["errors"][0]
