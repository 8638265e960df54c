"""Verifying hostile evidence packs: peak memory and wall time (issue 12.2). Prints; asserts nothing.

    .venv/bin/python benchmarks/evidence_limits.py [--receipts 10000] [--bomb-mib 1024]

Each pack is written to a temporary file, then verified in a fresh subprocess exactly as the
verify routes do (``verify_pack`` over the body's bytes), so the figures are that process's own:
its peak RSS (VmHWM) before and after and the wall time of one verification, then the
tracemalloc peak of a second one (traced separately: tracing slows Python down).
Packs: a genuine one of N receipts; a gzip bomb (one receipt member of 1 GiB of zeros); 100,000
empty entries; a forged copy of a receipt placed before the genuine one; a sparse member that
claims 1 GiB.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from helm_runbook.formats import receipts as rc
from helm_runbook.formats.evidence import build_pack
from helm_runbook.formats.keys import Signer

ROOT = Signer(SigningKey(b"\x01" * 32))
EVIDENCE = Signer(SigningKey(b"\x02" * 32), key_id="evidence")

CHILD = """
import json, sys, time, tracemalloc
from helm_runbook.formats.evidence import verify_pack

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
pack = open(sys.argv[1], "rb").read()
before = hwm()
started = time.perf_counter()
result = verify_pack(pack, receipt_public_key=sys.argv[2], evidence_public_key=sys.argv[3])
wall = time.perf_counter() - started
rss_peak = hwm()
tracemalloc.start()  # a second run: tracemalloc slows Python down several times
verify_pack(pack, receipt_public_key=sys.argv[2], evidence_public_key=sys.argv[3])
peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
tracemalloc.stop()
print(json.dumps({"verdict": result.verdict, "errors": result.errors[:1], "wall_s": wall,
                  "tracemalloc_peak_mib": peak, "rss_before_mib": before, "rss_peak_mib": rss_peak}))
"""


def receipts(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev = ""
    for i in range(1, n + 1):
        receipt = {
            "receipt_id": f"rcpt-{i:06d}", "decision_id": f"dec-{i}", "effect_id": "file_read",
            "status": "DENY", "verdict": "DENY", "reason_code": "PDP_DENY", "output_hash": "sha256:o",
            "args_hash": "sha256:a", "policy_hash": "sha256:p", "session_id": "bench",
            "lamport_clock": i, "prev_hash": prev, "metadata": {"reason": "PDP_DENY (ref=helm:x)"},
        }  # fmt: skip
        rc.sign(receipt, ROOT)
        prev = rc.chain_hash(receipt)
        out.append(receipt)
    return out


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(tarfile.GNU_FORMAT)


def members(files: list[tuple[str, bytes]]) -> bytes:
    return b"".join(header(n, len(d)) + d + bytes(-len(d) % 512) for n, d in files)


def genuine_members(pack: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(pack), mode="r:gz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def write_packs(directory: Path, n: int, bomb_mib: int) -> dict[str, Path]:
    genuine = build_pack(
        receipts(n), session_id="bench", receipt_public_key=ROOT.public_key_hex,
        evidence_signer=EVIDENCE,
    )[0]  # fmt: skip
    files = genuine_members(build_pack(
        receipts(3), session_id="bench", receipt_public_key=ROOT.public_key_hex,
        evidence_signer=EVIDENCE,
    )[0])  # fmt: skip
    lead = members(files[:3])
    paths = {"genuine": directory / "genuine.tar.gz"}
    paths["genuine"].write_bytes(genuine)

    paths["bomb"] = directory / "bomb.tar.gz"
    with gzip.open(paths["bomb"], "wb", compresslevel=9) as out:
        out.write(lead + header("receipts/bomb.json", bomb_mib << 20))
        zeros = bytes(1 << 20)
        for _ in range(bomb_mib):
            out.write(zeros)
        out.write(bytes(1024))

    paths["100k entries"] = directory / "entries.tar.gz"
    empty = b"".join(header(f"receipts/{i}.json", 0) for i in range(100_000))
    paths["100k entries"].write_bytes(gzip.compress(lead + empty + bytes(1024)))

    name, data = files[3]
    forged = json.loads(data)
    forged["verdict"] = forged["status"] = "ALLOW"
    forged["reason_code"] = ""
    dup = [*files[:3], (name, json.dumps(forged).encode()), *files[3:]]
    paths["duplicate"] = directory / "duplicate.tar.gz"
    paths["duplicate"].write_bytes(gzip.compress(members(dup) + bytes(1024)))

    paths["sparse 1 GiB"] = directory / "sparse.tar.gz"
    sparse = header("receipts/sparse.json", 0, tarfile.GNUTYPE_SPARSE)
    paths["sparse 1 GiB"].write_bytes(gzip.compress(lead + sparse + bytes(1024)))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=10_000)
    parser.add_argument("--bomb-mib", type=int, default=1024)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_packs(Path(tmp), opts.receipts, opts.bomb_mib)
        print(f"packs written in {time.perf_counter() - started:.1f}s")
        print(
            f"{'pack':<14} {'gz size':>10} {'verdict':>7} {'wall':>8} {'tracemalloc':>12} "
            f"{'RSS before':>11} {'RSS peak':>9}  first error"
        )
        for label, path in paths.items():
            run = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), ROOT.public_key_hex,
                 EVIDENCE.public_key_hex],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            fig = json.loads(run.stdout)
            print(
                f"{label:<14} {path.stat().st_size / 1024:>8.0f}KiB {fig['verdict']:>7} "
                f"{fig['wall_s']:>7.3f}s {fig['tracemalloc_peak_mib']:>9.1f}MiB "
                f"{fig['rss_before_mib']:>8.1f}MiB {fig['rss_peak_mib']:>6.1f}MiB  "
                f"{(fig['errors'] or [''])[0][:90]}"
            )


if __name__ == "__main__":
    main()
