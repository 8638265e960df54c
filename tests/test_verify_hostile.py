"""Verification that notices everything (issue 30): an edit to any field of any receipt, a chain
cut short against its known head, malformed files as one ``error:`` line (exit 2), and packs with
data after the end-of-archive marker or behind a lone zero block."""

from __future__ import annotations

import copy
import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from helm_runbook.errors import InputError
from helm_runbook.formats import receipts as rc
from helm_runbook.formats.evidence import verify_pack
from helm_runbook.runtime.context import Runtime
from helm_runbook.tools import verify
from helm_runbook.tools.verify import verify_receipts
from tests.conftest import ALLOW_FILE_READ, TENANT_HEADERS, RuntimeFactory

EVAL = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "v",
    "args": {"path": "/etc/hostname"},
}


def _chain(runtime: Runtime, count: int = 3) -> list[dict[str, Any]]:
    client = TestClient(runtime_app(runtime))
    for _ in range(count):
        assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL).status_code == 200
    listing = client.get("/api/v1/receipts", headers=TENANT_HEADERS, params={"session_id": "v"})
    receipts: list[dict[str, Any]] = listing.json()["receipts"]
    return receipts


def runtime_app(runtime: Runtime) -> Any:
    from helm_runbook.runtime.app import create_app

    return create_app(runtime)


@pytest.fixture
def chain(make_runtime: RuntimeFactory) -> tuple[list[dict[str, Any]], str]:
    runtime = make_runtime(ALLOW_FILE_READ)
    return _chain(runtime), runtime.signer.public_key_hex


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.update(executor_id="someone-else"),
        lambda r: r.update(timestamp="2020-01-01T00:00:00Z"),
        lambda r: r["metadata"].update(resource="E4"),
        lambda r: r.update(extra="added"),
        lambda r: r.pop(rc.ENVELOPE_SIGNATURE),
    ],
    ids=["executor_id", "timestamp", "metadata.resource", "added field", "envelope stripped"],
)
def test_an_edit_to_any_field_of_the_last_receipt_fails(
    chain: tuple[list[dict[str, Any]], str], edit: Any
) -> None:
    receipts, key = chain
    assert verify_receipts(receipts, key).ok
    edited = copy.deepcopy(receipts)
    edit(edited[-1])
    report = verify_receipts(edited, key)
    assert not report.ok
    assert [f.check for f in report.failures] == ["envelope"], report.failures


def test_chain_length_and_head_are_reported_and_a_truncation_is_noticed(
    chain: tuple[list[dict[str, Any]], str],
) -> None:
    receipts, key = chain
    full = verify_receipts(receipts, key)
    end = full.chains["v"]
    assert (end.count, end.head) == (3, rc.chain_hash(receipts[-1]))
    assert f"chain length 3, head {end.head}" in full.summary
    assert verify_receipts(receipts, key, expect_head=end.head, expect_count=3).ok
    cut = verify_receipts(receipts[:-1], key)
    assert cut.ok  # a prefix is a valid chain on its own: only the known head tells
    cut = verify_receipts(receipts[:-1], key, expect_head=end.head, expect_count=3)
    assert [f.check for f in cut.failures] == ["head", "head"], cut.failures
    with pytest.raises(InputError, match="one session's chain"):
        other = {**receipts[0], "session_id": "w"}
        verify_receipts([*receipts, other], key, expect_head=end.head)


def _cli(tmp_path: Path, content: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "receipts.json"
    source.write_bytes(content)
    return subprocess.run(
        [sys.executable, "-m", "helm_runbook.cli", "verify-receipts", str(source),
         "--public-key", "ab" * 32, *extra],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1]", "receipt 1 is a JSON number"),
        (b'"a"\n"b"\n', "receipt 1 is a JSON string"),
        (b"[" * 100_000 + b"]" * 100_000, "nesting deeper than 64"),
        (b'{"receipt_id": "r", "receipt_id": "s"}', "duplicate key"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"receipts": 1}', "holds no receipts"),
        (b'[{"receipt_id": "r", "session_id": "s", "lamport_clock": 9007199254740993}]', "outside"),
    ],
    ids=[
        "list of numbers",
        "lines of strings",
        "deep",
        "duplicate keys",
        "binary",
        "no list",
        "big int",
    ],
)
def test_every_malformed_file_is_one_error_line_and_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    result = _cli(tmp_path, content)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)


def test_a_receipt_that_cannot_be_canonicalised_fails_without_a_traceback(
    chain: tuple[list[dict[str, Any]], str],
) -> None:
    receipts, key = chain
    odd = [*copy.deepcopy(receipts)]
    odd[-1]["metadata"] = {"n": 2**60}  # beyond I-JSON: JCS refuses it
    report = verify_receipts(odd, key)
    assert not report.ok and report.failures[0].check == "envelope"


def test_the_file_is_read_under_a_byte_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "MAX_RECEIPTS_FILE_BYTES", 1000)
    source = tmp_path / "big.json"
    source.write_bytes(b"[" + b" " * 5000 + b"]")
    with pytest.raises(InputError, match="larger than 1000 bytes"):
        verify.load_receipts(str(source))


def test_the_cli_checks_the_expected_head(
    chain: tuple[list[dict[str, Any]], str], tmp_path: Path
) -> None:
    receipts, key = chain
    head = rc.chain_hash(receipts[-1])
    source = tmp_path / "receipts.json"
    source.write_text(json.dumps({"receipts": receipts[:-1]}))
    args = [
        sys.executable,
        "-m",
        "helm_runbook.cli",
        "verify-receipts",
        str(source),
        "--public-key",
        key,
    ]
    ok = subprocess.run([*args], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    cut = subprocess.run([*args, "--expect-head", head, "--expect-count", "3"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert cut.returncode == 5, cut.stderr
    assert "head" in cut.stdout and "expected 3" in cut.stdout


# -- packs --------------------------------------------------------------------------------------


def _exported(make_runtime: RuntimeFactory) -> tuple[Runtime, bytes]:
    runtime = make_runtime(ALLOW_FILE_READ)
    _chain(runtime, 2)
    client = TestClient(runtime_app(runtime))
    response = client.post(
        "/api/v1/evidence/export", headers=TENANT_HEADERS, json={"session_id": "v"}
    )
    assert response.status_code == 200
    return runtime, response.content


def _members_end(tar_bytes: bytes) -> int:
    """Where the first zero block (the end-of-archive marker) starts."""
    offset = 0
    while tar_bytes[offset : offset + 512] != bytes(512):
        size = int(tar_bytes[offset + 124 : offset + 136].split(b"\0")[0].strip() or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return offset


def _forged_member() -> bytes:
    data = b'{"receipt_id": "forged", "verdict": "ALLOW"}\n'
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("receipts/forged.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return raw[: _members_end(raw)]


@pytest.mark.parametrize("gap", [1, 2], ids=["after a lone zero block", "after the end marker"])
def test_a_pack_with_a_member_past_the_end_marker_fails(
    make_runtime: RuntimeFactory, gap: int
) -> None:
    runtime, pack = _exported(make_runtime)
    keys = {"receipt_public_key": runtime.signer.public_key_hex,
            "evidence_public_key": runtime.evidence_signer.public_key_hex}  # fmt: skip
    assert verify_pack(pack, **keys).verdict == "PASS"
    tar_bytes = gzip.decompress(pack)
    end = _members_end(tar_bytes)
    forged = tar_bytes[:end] + bytes(512 * gap) + _forged_member() + bytes(1024)
    forged += bytes(-len(forged) % 10240)
    with tarfile.open(fileobj=io.BytesIO(forged), ignore_zeros=True) as tar:
        assert "receipts/forged.json" in tar.getnames()  # what `tar -i` would extract
    result = verify_pack(gzip.compress(forged), **keys)
    assert result.verdict == "FAIL", result.as_json()
    assert any("zero block" in e or "after the end-of-archive" in e for e in result.errors)
    client = TestClient(runtime_app(runtime))
    route = client.post("/api/v1/evidence/verify", content=gzip.compress(forged))
    assert route.status_code == 200 and route.json()["verdict"] == "FAIL"
