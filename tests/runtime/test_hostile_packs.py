"""Packs from untrusted callers: every limit and refused form FAILs fast naming what is wrong,
on the routes and the CLI alike, and nothing raises."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from starlette.testclient import TestClient

from helm_runbook.cli import main as cli_main
from helm_runbook.formats import evidence as pack_format
from helm_runbook.formats.evidence import INDEX, MANIFEST, SEAL, verify_pack
from helm_runbook.runtime import evidence
from helm_runbook.runtime.app import create_app, create_health_app
from helm_runbook.runtime.context import Runtime
from tests.conftest import TENANT_HEADERS
from tests.formats.test_evidence import EVIDENCE, RECEIPTS, ROOT, _files, _pack

Member = tuple[str, bytes] | tarfile.TarInfo


def _tar(members: list[Member], *, level: int = 6) -> bytes:
    """A tar.gz of ``members`` in this order: (name, data) regular files, or bare headers."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def _genuine() -> list[tuple[str, bytes]]:
    return list(_files(_pack(RECEIPTS)).items())


def _verify(pack: bytes, replay: bool = False) -> dict[str, Any]:
    return verify_pack(
        pack,
        receipt_public_key=ROOT.public_key_hex,
        evidence_public_key=EVIDENCE.public_key_hex,
        replay=replay,
    ).as_json()


def _failed_naming(pack: bytes, *words: str) -> dict[str, Any]:
    result = _verify(pack)
    assert result["verdict"] == "FAIL", result
    assert any(all(w in e for w in words) for e in result["errors"]), result["errors"]
    return result


def _header(name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, "/etc/passwd"
    return info


def test_the_genuine_pack_still_passes_with_replay() -> None:
    assert _verify(_tar(_genuine()), replay=True)["verdict"] == "PASS"


def test_a_forged_receipt_before_the_genuine_one_is_refused() -> None:
    """tar extracts the first copy, a dict keeps the last: duplicates must never verify."""
    files = _genuine()
    name, data = files[3]
    forged = json.loads(data)
    forged["verdict"] = forged["status"] = "ALLOW"
    forged["reason_code"] = ""
    _failed_naming(
        _tar([*files[:3], (name, json.dumps(forged).encode()), *files[3:]]), name, "duplicate"
    )


def test_a_member_over_the_receipt_cap_fails_at_its_header() -> None:
    """The header claims 1 GiB: refused before a byte of it is read (the data is not even there)."""
    bomb = _header("receipts/bomb.json", tarfile.REGTYPE, 1 << 30)
    raw = b""
    for name, data in _genuine()[:3]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        raw += info.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)
    pack = gzip.compress(raw + bomb.tobuf(tarfile.GNU_FORMAT) + bytes(1 << 16))
    _failed_naming(pack, "receipts/bomb.json", "MAX_RECEIPT_BYTES")


def test_total_decompressed_bytes_are_capped() -> None:
    filler = [(f"extra/{i}.bin", bytes(pack_format.MAX_OTHER_MEMBER_BYTES)) for i in range(70)]
    _failed_naming(_tar([*_genuine()[:3], *filler], level=1), "MAX_DECOMPRESSED_BYTES")


def test_member_count_is_capped() -> None:
    many = [(f"receipts/{i}.json", b"") for i in range(pack_format.MAX_MEMBERS)]
    _failed_naming(_tar([*_genuine()[:3], *many], level=1), "MAX_MEMBERS")


def test_an_oversized_extended_header_is_refused() -> None:
    info = tarfile.TarInfo("receipts/x.json")
    info.pax_headers = {"comment": "x" * (pack_format.MAX_EXTENDED_HEADER_BYTES + 1)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in _genuine()[:3]:
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
        tar.addfile(info, io.BytesIO(b""))
    _failed_naming(gzip.compress(raw.getvalue()), "MAX_EXTENDED_HEADER_BYTES")


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (_header("receipts/link.json", tarfile.SYMTYPE), ("symbolic link",)),
        (_header("receipts/hard.json", tarfile.LNKTYPE), ("hard link",)),
        (_header("receipts/sparse.json", tarfile.GNUTYPE_SPARSE), ("sparse",)),
        (_header("receipts/dev.json", tarfile.CHRTYPE), ("character device",)),
        (_header("receipts/fifo.json", tarfile.FIFOTYPE), ("FIFO",)),
        (_header("receipts", tarfile.DIRTYPE), ("directory",)),
        (("/etc/cron.d/x", b"{}"), ("relative path",)),
        (("receipts/../../x.json", b"{}"), ("'..'",)),
        (("receipts//x.json", b"{}"), ("empty path",)),
        (("./manifest.json", b"{}"), ("'.'",)),
    ],
)
def test_only_regular_files_with_plain_relative_names(
    member: Member, words: tuple[str, ...]
) -> None:
    _failed_naming(_tar([*_genuine()[:3], member]), *words)


@pytest.mark.parametrize("size", ["\u00b2", "-1", "1e9", ""])
def test_a_malformed_pax_size_fails_cleanly(size: str) -> None:
    info = tarfile.TarInfo("receipts/x.json")
    info.pax_headers = {"size": size}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    _failed_naming(gzip.compress(raw.getvalue()), "pax size")


def test_names_in_errors_are_printable() -> None:
    result = _verify(_tar([("\x1b[31mevil\n.json", b"{}")]))
    assert result["verdict"] == "FAIL"
    assert all(c.isprintable() for e in result["errors"] for c in e), result["errors"]


def test_a_pax_sparse_member_is_refused() -> None:
    info = tarfile.TarInfo("receipts/sparse.json")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.realsize": str(1 << 30)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    _failed_naming(gzip.compress(raw.getvalue()), "sparse")


def test_index_seal_and_manifest_come_first() -> None:
    files = _genuine()
    _failed_naming(_tar([files[3], *files[:3], *files[4:]]), files[3][0], "expected 00_INDEX.json")
    _failed_naming(_tar([files[0], *files[2:]]), "manifest.json", SEAL)


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"text"', b"7", b"[" * 5000])
def test_a_receipt_that_is_not_an_object_fails_cleanly(body: bytes) -> None:
    files = dict(_genuine())
    files["receipts/rcpt-a-1.json"] = body
    for replay in (False, True):
        result = _verify(_tar(list(files.items())), replay=replay)
        assert result["verdict"] == "FAIL"
        assert any("receipts/rcpt-a-1.json" in e for e in result["errors"]), result["errors"]


@pytest.mark.parametrize(
    ("target", "body"),
    [(INDEX, b"[]"), (MANIFEST, b"[]"), (MANIFEST, b'{"file_hashes": [1]}')],
)
def test_control_files_of_the_wrong_shape_fail_cleanly(target: str, body: bytes) -> None:
    files = dict(_genuine())
    files[target] = body
    files[SEAL] = EVIDENCE.sign_hex(files[INDEX]).encode()  # sealed: the shape is what fails
    _failed_naming(_tar(list(files.items())), MANIFEST, "unreadable")


def test_a_bad_seal_stops_the_read_before_the_receipts() -> None:
    files = _genuine()
    bomb = [(f"receipts/{i}.json", b"x") for i in range(pack_format.MAX_MEMBERS)]
    result = _failed_naming(
        _tar([files[0], (SEAL, b"00" * 64), files[2], *bomb]), SEAL, "seal does not verify"
    )
    assert result["checks"]["signatures"] == "FAIL" and len(result["errors"]) == 1


def test_the_time_limit_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_format, "MAX_VERIFY_SECONDS", -1.0)
    _failed_naming(_tar(_genuine()), "MAX_VERIFY_SECONDS")


def test_the_cli_streams_and_caps_the_compressed_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "pack.tar.gz"
    pack.write_bytes(_tar(_genuine()))
    monkeypatch.setattr(pack_format, "MAX_PACK_BYTES", 100)
    key = ["--public-key", ROOT.public_key_hex, "--evidence-public-key", EVIDENCE.public_key_hex]
    assert cli_main(["verify-evidence", str(pack), *key]) == 5  # failed verification
    assert "MAX_PACK_BYTES" in capsys.readouterr().out


def test_route_and_cli_refuse_the_duplicate(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s", "args": {}}
    headers = TENANT_HEADERS
    assert client.post("/api/v1/evaluate", headers=headers, json=body).status_code == 200
    pack = client.post("/api/v1/evidence/export", headers=headers, json={}).content
    files = list(_files(pack).items())
    name, data = files[3]
    forged = json.loads(data)
    forged["verdict"] = forged["status"] = "ALLOW"
    forged["reason_code"] = ""
    hostile = _tar([*files[:3], (name, json.dumps(forged).encode()), *files[3:]])
    for route in ("/api/v1/evidence/verify", "/api/v1/replay/verify"):
        answer = client.post(route, content=hostile)
        assert answer.status_code == 200 and answer.json()["verdict"] == "FAIL", answer.text
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(hostile)
    assert (
        cli_main(["verify-evidence", str(path), "--public-key", runtime.signer.public_key_hex]) == 5
    )


def _blocking_verify(release: threading.Event, entered: threading.Event) -> Any:
    """A stand-in for a slow verification: holds its caller until ``release`` (at most 10 s)."""

    def slow(pack: bytes | BinaryIO, **kwargs: Any) -> pack_format.PackVerification:
        entered.set()
        result = pack_format.PackVerification()
        if not release.wait(10):
            result.fail("signatures", "test", "never released")
        return result

    return slow


async def test_a_slow_verification_never_delays_the_health_port(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification waits for the health probe's answer: it gets it only when the probe is
    served while the verification runs (on the old code it held the event loop, so it waited in
    vain and the probe came after it)."""
    probe_answered, entered = threading.Event(), threading.Event()
    monkeypatch.setattr(evidence, "verify_pack", _blocking_verify(probe_answered, entered))
    api = httpx.AsyncClient(transport=httpx.ASGITransport(create_app(runtime)), base_url="http://a")
    health = httpx.AsyncClient(
        transport=httpx.ASGITransport(create_health_app()), base_url="http://h"
    )
    async with api, health:
        verifying = asyncio.create_task(api.post("/api/v1/evidence/verify", content=b"x"))
        while not entered.is_set() and not verifying.done():
            await asyncio.sleep(0.01)
        served_while_verifying = not verifying.done()
        probe = await health.get("/healthz")
        probe_answered.set()
        assert (await verifying).json()["verdict"] == "PASS"
    assert probe.status_code == 200
    assert served_while_verifying


async def test_verifications_beyond_workers_and_queue_get_503(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered = threading.Event(), threading.Event()
    monkeypatch.setattr(evidence, "verify_pack", _blocking_verify(release, entered))
    runtime.verify_workers = evidence.VerifyWorkers(workers=1, queue=1)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(create_app(runtime)), base_url="http://a")
    async with api:
        held = [
            asyncio.create_task(api.post("/api/v1/evidence/verify", content=b"x")) for _ in range(2)
        ]
        while not entered.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the second request reach the queue
        refused = await api.post("/api/v1/replay/verify", content=b"x")
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "capacity" in refused.json()["detail"]
