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
import re
import tarfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from helm_runbook.formats import receipts as rc
from helm_runbook.formats.keys import Signer, verify_hex

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


# -- reading untrusted packs ------------------------------------------------------------------
#
# A pack comes from whoever calls the verify routes, so it is read as a stream under limits: the
# tar headers are parsed here (not by ``tarfile``, which would buffer a pax header of any size and
# expand sparse members), every member is hashed as it streams, and only the small control files
# and the receipts (each under a small cap) are kept. The first limit crossed ends the read.

MAX_DECOMPRESSED_BYTES = 64 << 20  # the whole tar stream after gunzip
MAX_MEMBERS = MAX_RECEIPTS + 3  # the receipts, the index, its seal and the manifest
MAX_RECEIPT_BYTES = 64 << 10
MAX_MEMBER_BYTES = {INDEX: 64 << 10, SEAL: 1 << 10, MANIFEST: 4 << 20}
MAX_OTHER_MEMBER_BYTES = 1 << 20  # listed files other than receipts (none are exported today)
MAX_EXTENDED_HEADER_BYTES = 8 << 10  # one pax or GNU long-name header
MAX_NAME_CHARS = 255
MAX_VERIFY_SECONDS = 30.0
_LEADING = (INDEX, SEAL, MANIFEST)  # the exported order: the seal is checked before any receipt
_BLOCK = 512
_CHUNK = 64 << 10
_TYPE_NAMES = {
    b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device",
    b"4": "a block device", b"5": "a directory", b"6": "a FIFO", b"7": "a contiguous file",
    b"S": "a sparse file", b"K": "a long link name", b"g": "a global pax header",
}  # fmt: skip


class PackRefused(Exception):
    """The pack broke a limit or the exported form, or its seal is not genuine: verification
    stops at once, before any more of the pack is read."""

    def __init__(self, where: str, why: str, check: str = "policy_compliance") -> None:
        where = "".join(c if c.isprintable() else "?" for c in where[:200])  # names are untrusted
        super().__init__(f"{where}: {why}")
        self.where, self.why, self.check = where, why, check


class _CappedFile:
    """The compressed input, refused past ``MAX_PACK_BYTES`` (a file given to the CLI can be any size)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self.read_bytes = raw, 0

    def read(self, n: int = -1, /) -> bytes:
        data = self._raw.read(_CHUNK if n is None or n < 0 else min(n, _CHUNK))
        self.read_bytes += len(data)
        if self.read_bytes > MAX_PACK_BYTES:
            raise PackRefused("archive", f"larger than {MAX_PACK_BYTES} bytes (MAX_PACK_BYTES)")
        return data


class _TarStream:
    """Bounded reads of the gunzipped tar stream: total bytes and wall time."""

    def __init__(self, raw: BinaryIO, deadline: float) -> None:
        self._gz = gzip.GzipFile(fileobj=cast(BinaryIO, _CappedFile(raw)), mode="rb")
        self._deadline = deadline
        self.total = 0

    def read(self, n: int) -> bytes:
        if self.total + n > MAX_DECOMPRESSED_BYTES:
            raise PackRefused(
                "archive",
                f"more than {MAX_DECOMPRESSED_BYTES} bytes once decompressed "
                "(MAX_DECOMPRESSED_BYTES)",
            )
        if time.monotonic() > self._deadline:
            raise PackRefused(
                "archive", f"not read within {MAX_VERIFY_SECONDS:g}s (MAX_VERIFY_SECONDS)"
            )
        data = self._gz.read(n)
        self.total += len(data)
        return data

    def exact(self, n: int, where: str) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise PackRefused(where, "the archive ends inside this member (truncated)")
        return data


def _number(field: bytes, where: str) -> int:
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise PackRefused(where, "tar header has a malformed number field") from None


def _check_path(name: str) -> None:
    """Relative, normalised, printable paths only: nothing a tar extractor could place elsewhere."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise PackRefused(
            name[:80] or "archive", f"member name is empty or longer than {MAX_NAME_CHARS}"
        )
    if name.startswith("/") or "\\" in name or any(ord(c) < 0x20 for c in name):
        raise PackRefused(
            name, "member name must be a relative path without '\\' or control characters"
        )
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise PackRefused(name, "member name must not contain '..', '.' or empty path components")


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    """``<len> <key>=<value>\\n`` records (POSIX pax); only ``path`` and ``size`` are honoured."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
            key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
            records[key.decode()] = value.decode()
        except (ValueError, UnicodeDecodeError):
            raise PackRefused(where, "malformed pax extended header") from None
        if length <= 0:
            raise PackRefused(where, "malformed pax extended header")
        pos += length
    return records


@dataclass
class _Member:
    name: str
    size: int


def _members(stream: _TarStream) -> Iterator[_Member]:
    """Each regular-file member's name and size; the caller reads exactly ``size`` bytes of data
    (plus padding, done here) before asking for the next. Every other kind of member refuses."""
    long_name: str | None = None
    pax: dict[str, str] = {}
    headers = 0
    while True:
        header = stream.read(_BLOCK)
        if not header:
            return  # no end-of-archive marker: tarfile accepts a missing trailer too
        if header == bytes(_BLOCK):
            _end_of_archive(stream)
            return
        if len(header) != _BLOCK:
            raise PackRefused("archive", "truncated tar header")
        headers += 1
        if headers > 2 * MAX_MEMBERS:
            raise PackRefused("archive", f"more than {MAX_MEMBERS} members (MAX_MEMBERS)")
        stored = _number(header[148:156], "archive")
        unsigned = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
        if stored != unsigned:
            raise PackRefused("archive", "tar header checksum mismatch (not a tar stream)")
        kind, size = header[156:157], _number(header[124:136], "archive")
        if kind in (b"x", b"L"):
            if size > MAX_EXTENDED_HEADER_BYTES:
                raise PackRefused(
                    "archive",
                    f"extended header of {size} bytes, over {MAX_EXTENDED_HEADER_BYTES} "
                    "(MAX_EXTENDED_HEADER_BYTES)",
                )
            data = stream.exact(-(-size // _BLOCK) * _BLOCK, "archive")[:size]
            if kind == b"L":
                long_name = data.split(b"\0", 1)[0].decode(errors="replace")
            else:
                pax.update(_pax_records(data, "archive"))
            continue
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        plain = header[:100].split(b"\0", 1)[0]
        if prefix:
            plain = prefix + b"/" + plain
        name = pax.get("path") or long_name or plain.decode(errors="replace")
        if "size" in pax:
            size = int(pax["size"]) if re.fullmatch(r"[0-9]{1,19}", pax["size"]) else -1
        sparse = any(key.startswith("GNU.sparse.") for key in pax)
        long_name, pax = None, {}
        if kind not in (b"0", b"\0") or sparse:
            what = "a sparse file" if sparse else _TYPE_NAMES.get(kind, f"of tar type {kind!r}")
            raise PackRefused(name, f"member is {what}: only regular files are accepted")
        if size < 0:
            raise PackRefused(name, "malformed pax size")
        _check_path(name)
        yield _Member(name, size)
        padding = -size % _BLOCK
        if padding:
            stream.exact(padding, name)


def _end_of_archive(stream: _TarStream) -> None:
    """After the first zero block: a second one, then nothing but the zero padding of the last
    record. ``tar`` skips a lone zero block and reads on (``-i``, or GNU tar's default on
    concatenated archives), so data there could be extracted while the verifier never saw it."""
    second = stream.read(_BLOCK)
    if second != bytes(_BLOCK):
        raise PackRefused(
            "archive", "a lone zero block: the end-of-archive marker is two zero blocks"
        )
    while chunk := stream.read(_CHUNK):
        if chunk.count(0) != len(chunk):
            raise PackRefused("archive", "data after the end-of-archive marker")


def _member_cap(name: str) -> tuple[int, str]:
    if name in MAX_MEMBER_BYTES:
        return MAX_MEMBER_BYTES[name], "MAX_MEMBER_BYTES"
    if name.startswith("receipts/"):
        return MAX_RECEIPT_BYTES, "MAX_RECEIPT_BYTES"
    return MAX_OTHER_MEMBER_BYTES, "MAX_OTHER_MEMBER_BYTES"


@dataclass
class _PackContents:
    """What a bounded read keeps: the control files, the receipts' bytes, every member's sha256."""

    control: dict[str, bytes] = field(default_factory=dict)
    receipts: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)


def _read_pack(raw: BinaryIO, evidence_public_key: str) -> _PackContents:
    """Stream the pack under the limits above; raise PackRefused at the first one crossed, or
    as soon as the seal (the second member) does not verify over the index (the first)."""
    stream = _TarStream(raw, time.monotonic() + MAX_VERIFY_SECONDS)
    out = _PackContents()
    seen: set[str] = set()
    for position, member in enumerate(_members(stream)):
        if position >= MAX_MEMBERS:
            raise PackRefused("archive", f"more than {MAX_MEMBERS} members (MAX_MEMBERS)")
        if position < len(_LEADING) and member.name != _LEADING[position]:
            raise PackRefused(
                member.name,
                f"expected {_LEADING[position]} here: a pack starts with "
                f"{', '.join(_LEADING)} in that order (as exported)",
            )
        folded = member.name.casefold()
        if folded in seen:
            raise PackRefused(
                member.name, "duplicate member name (a later copy could hide the first)"
            )
        seen.add(folded)
        cap, cap_name = _member_cap(member.name)
        if member.size > cap:
            raise PackRefused(
                member.name, f"member is {member.size} bytes, over {cap} ({cap_name})"
            )
        digest = hashlib.sha256()
        keep = member.name in MAX_MEMBER_BYTES or member.name.startswith("receipts/")
        kept = bytearray()
        left = member.size
        while left:
            chunk = stream.exact(min(left, _CHUNK), member.name)
            digest.update(chunk)
            if keep:
                kept += chunk
            left -= len(chunk)
        out.hashes[member.name] = digest.hexdigest()
        if member.name in MAX_MEMBER_BYTES:
            out.control[member.name] = bytes(kept)
        elif keep:
            out.receipts[member.name] = bytes(kept)
        if member.name == SEAL and not verify_hex(
            evidence_public_key, out.control[INDEX], bytes(kept).decode(errors="replace").strip()
        ):
            raise PackRefused(
                SEAL,
                "seal does not verify over 00_INDEX.json with the trusted evidence key",
                check="signatures",
            )
    for name in _LEADING:
        if name not in out.control:
            raise PackRefused(name, "missing from the pack")
    return out


def _load_json(data: bytes) -> Any:
    """JSON from the pack, or ValueError (too deep a nesting is malformed too, not a crash)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _receipt_form(receipt: Any) -> str:
    """Why ``receipt`` cannot be checked at all ('' when it can): the fields the chain sorts by."""
    if not isinstance(receipt, dict):
        return f"a receipt must be a JSON object, not {type(receipt).__name__}"
    lamport = receipt.get("lamport_clock")
    if not isinstance(lamport, int) or isinstance(lamport, bool) or lamport < 0:
        return "lamport_clock must be a non-negative integer"
    if not isinstance(receipt.get("session_id"), str):
        return "session_id must be a string"
    return ""


def verify_pack(
    pack: bytes | BinaryIO,
    *,
    receipt_public_key: str,
    evidence_public_key: str,
    replay: bool = False,
) -> PackVerification:
    """Verify a pack (bytes, or a binary file read as a stream) against trusted keys (never the
    keys it carries), within the limits above; ``replay`` adds the replay check."""
    result = PackVerification()
    if replay:
        result.checks["replay"] = "PASS"
    raw = io.BytesIO(pack) if isinstance(pack, bytes) else pack
    try:
        contents = _read_pack(raw, evidence_public_key)
    except PackRefused as exc:
        result.fail(exc.check, exc.where, exc.why)
        return result
    except (OSError, EOFError, zlib.error) as exc:
        result.fail("policy_compliance", "archive", f"not a readable tar.gz ({exc})")
        return result
    index_bytes, manifest_bytes = contents.control[INDEX], contents.control[MANIFEST]
    try:
        index, manifest = _load_json(index_bytes), _load_json(manifest_bytes)
        if not isinstance(index, dict) or not isinstance(manifest, dict):
            raise ValueError("00_INDEX.json and manifest.json must be JSON objects")
        hashes = manifest.get("file_hashes")
        if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
            raise ValueError("manifest.json file_hashes must map names to sha256 hex strings")
    except ValueError as exc:
        result.fail("policy_compliance", MANIFEST, f"unreadable manifest or index ({exc})")
        return result
    result.manifest_root_hash = contents.hashes[MANIFEST]
    if index.get("manifest_sha256") != result.manifest_root_hash:
        result.fail(
            "policy_compliance", MANIFEST, "sha256 differs from the one sealed in 00_INDEX.json"
        )
    for name, digest in sorted(contents.hashes.items()):
        if name in _LEADING:
            continue
        if name not in hashes:
            result.fail("policy_compliance", name, "file is not listed in manifest.json")
        elif digest != hashes[name]:
            result.fail("policy_compliance", name, "sha256 differs from manifest.json")
    for name in sorted(set(hashes) - set(contents.hashes)):
        result.fail("policy_compliance", name, "listed in manifest.json but missing")
    chain: list[dict[str, Any]] = []
    for name, data in sorted(contents.receipts.items()):
        try:
            receipt = _load_json(data)
        except ValueError:
            result.fail("signatures", name, "not valid JSON")
            continue
        problem = _receipt_form(receipt)
        if problem:
            result.fail("signatures", name, problem)
            continue
        _check_receipt(name, receipt, receipt_public_key, result, replay=replay)
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
    try:
        for session, items in sorted(by_session.items()):
            for receipt, why in rc.chain_problems(items):
                result.fail(
                    "causal_chain",
                    f"receipts/{receipt.get('receipt_id')}.json",
                    f"session {session}: {why}",
                )
        result.merkle = merkle_root([bytes.fromhex(rc.chain_hash(r)) for r in _chain_order(chain)])
    except (TypeError, ValueError, RecursionError) as exc:
        result.fail("causal_chain", "receipts", f"a receipt cannot be hashed ({exc})")
        return result
    if index.get("merkle_root") != result.merkle:
        result.fail("causal_chain", INDEX, "merkle_root differs from the receipts in the pack")
    return result


def _check_receipt(
    name: str, receipt: dict[str, Any], key: str, result: PackVerification, *, replay: bool
) -> None:
    """Signature and verdict agreement of one receipt; with ``replay``, its bindings agree
    (output_hash = decision_hash, the metadata's args_hash = args_hash) so the decision can be
    replayed from it."""
    try:
        signed = rc.signature_valid(receipt, key)
    except (TypeError, ValueError, RecursionError):
        signed = False
    if not signed:
        result.fail("signatures", name, "receipt signature does not verify with the trusted key")
    verdict, code = receipt.get("verdict"), receipt.get("reason_code", "")
    if (verdict == "ALLOW") != (code == "") or verdict not in ("ALLOW", "DENY", "ESCALATE"):
        result.fail(
            "policy_compliance",
            name,
            f"verdict {str(verdict)[:40]!r} disagrees with reason_code {str(code)[:40]!r}",
        )
    if receipt.get("status") != verdict:
        result.fail("policy_compliance", name, "status differs from verdict")
    if not replay:
        return
    metadata = receipt.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if receipt.get("decision_hash") and receipt.get("output_hash") != receipt.get("decision_hash"):
        result.fail("replay", name, "output_hash is not the decision_hash")
    if metadata.get("args_hash") not in (None, receipt.get("args_hash")):
        result.fail("replay", name, "metadata.args_hash differs from args_hash")
