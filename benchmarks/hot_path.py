"""Hot-path figures for the reference runtime (issue 2). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/hot_path.py                 # both parts
    .venv/bin/python benchmarks/hot_path.py --skip-http     # in-process only
    .venv/bin/python benchmarks/hot_path.py --skip-inprocess --duration 10 [--runtime-src DIR]

In-process: ``Kernel.evaluate`` (decide + CEL + sign decision + sign receipt + chain + SQLite
commit), sequential, N iterations; between chunks of them, each stage the path is made of is
timed on its own (the CEL rule on the fields of the input it reads, JCS, Ed25519, the chain
hash, the store's append of a ready receipt). Their sum, each counted as often as one evaluate needs it, is the
floor; ``runtime / floor`` is measured in one run, so machine load weighs on both sides.
HTTP: ``helm-ai-kernel serve`` as a child process; a load generator in another process keeps C
keep-alive connections busy with governed ``POST /api/v1/evaluate`` requests for D seconds, then
with ``GET /version`` (the HTTP layer alone: no auth, body, kernel or thread hop) for the same
time. Both share the machine's cores with the load generator, so each line also gives the
generator's own CPU share and the server's CPU time per request (``/proc/PID/stat`` before and
after): requests/s depend on what else runs, CPU per request much less. Last, one keep-alive
client sends ``/healthz`` and ``/api/v1/evaluate`` in turn (sequential, n each): their medians and
the difference, what evaluate costs beyond an HTTP round trip on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from helm_runbook.formats import receipts
from helm_runbook.formats.canonical import canonical_json, canonical_text, sha256_hex
from helm_runbook.runtime.server import build_runtime
from helm_runbook.runtime.settings import Settings
from helm_runbook.runtime.store.base import ReceiptQuery
from helm_runbook.standins.process import RuntimeProcess

ADMIN = "bench-admin-key"
POLICY_TOML = """name = "helm-chart"
profile = "kubernetes"
reference_pack = "./reference-pack.json"
[server]
bind = "127.0.0.1"
port = 8080
[receipts]
store = "sqlite"
path = "/data/helm.db"
"""
PACK = {
    "pack_id": "bench",
    "version": 1,
    "runtime_actions": [
        {"action": "file_read", "expression": 'input.effect.params.args.path == "/etc/hostname"'}
    ],
}
BODY = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "bench",
    "args": {"path": "/etc/hostname"},
}


def write_policy(root: Path) -> Path:
    (root / "policy").mkdir(parents=True, exist_ok=True)
    (root / "policy" / "serve-policy.toml").write_text(POLICY_TOML)
    (root / "policy" / "reference-pack.json").write_text(json.dumps(PACK))
    return root / "policy" / "serve-policy.toml"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(iterations: int) -> None:
    """Evaluate N times in chunks; between chunks, sample each stage the path is made of, so the
    runtime and its floor are measured in the same minutes of machine load."""
    chunks = 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings.from_env(
            policy_path=write_policy(root), addr="127.0.0.1", port=0,
            data_dir=root / "data", environ={"HELM_ADMIN_API_KEY": ADMIN},
        )  # fmt: skip
        runtime = build_runtime(settings)
        kernel = runtime.kernel
        ctx = {"args": BODY["args"], "session_id": "bench", "tenant_id": "default"}

        def one(session: str) -> None:
            kernel.evaluate(
                tenant_id="default", principal="system-admin", session_id=session,
                action="file_read", resource="E1", args=BODY["args"], context=ctx,
            )  # fmt: skip

        for i in range(200):  # warm-up (page cache, CEL program, sqlite statement cache)
            one(f"warm{i % 4}")
        stages = _Stages(runtime, ctx)
        samples: list[float] = []
        cpu = 0.0
        for _ in range(chunks):
            per_chunk = iterations // chunks
            start_cpu = time.process_time()
            for _ in range(per_chunk):
                start = time.perf_counter_ns()
                one("bench")
                samples.append((time.perf_counter_ns() - start) / 1000)
            cpu += time.process_time() - start_cpu
            stages.sample(max(1, 2000 // chunks))
        done = len(samples)
        last = runtime.store.list(
            ReceiptQuery("default", limit=1, session_id="bench", after_lamport=done - 1)
        ).items
        assert last and last[0].receipt["lamport_clock"] == done, "chain is not contiguous"
        runtime.store.close()
    stage = stages.medians()
    floor = sum(stage[name] * times for name, times in FLOOR.items())
    p50, p99 = pct(samples, 0.50), pct(samples, 0.99)
    print(f"in-process evaluate+sign+persist, sequential, n={done}")
    print(
        f"  p50 {p50:7.1f} us   p95 {pct(samples, 0.95):7.1f} us   "
        f"p99 {p99:7.1f} us   mean {statistics.fmean(samples):7.1f} us   "
        f"CPU {cpu / done * 1e6:7.1f} us/evaluate"
    )
    print("  stage medians (us): " + "  ".join(f"{k} {v:.1f}" for k, v in stage.items()))
    print(
        "  floor = "
        + " + ".join(f"{n}{f' x{t}' if t > 1 else ''}" for n, t in FLOOR.items())
        + f" = {floor:.1f} us"
    )
    print(f"  runtime / floor: p50 {p50 / floor:.2f}x   p99 {p99 / floor:.2f}x")


# What one evaluate cannot do without, each as often as the path needs it: the rule's CEL on the
# fields of the input the runtime builds that the rule reads (``compiler.fields_read``), one canonicalisation of the whole receipt, three Ed25519 signatures
# (decision record, receipt.v5 preimage, envelope), the chain hash, and the store's append of a
# ready receipt (head read, insert, WAL commit). The chain hash is timed as the SHA-256 seal
# takes over the chain view's bytes (timing
# chain_hash() re-canonicalised the receipt: JCS counted twice in the floor).
FLOOR = {"cel": 1, "jcs(receipt)": 1, "ed25519-sign": 3, "chain-hash": 1, "sqlite-append": 1}


class _Stages:
    """Per-stage samples, taken with the runtime's own objects and inputs."""

    def __init__(self, runtime: Any, ctx: dict[str, Any]) -> None:
        from helm_runbook.runtime.guardian import cel_input
        from helm_runbook.runtime.policy.compiler import fields_read
        from helm_runbook.runtime.store.base import AppendedReceipt, ChainHead

        snapshot = runtime.kernel.snapshots.get(runtime.scope)
        rule = snapshot.policy.rules["file_read"]
        signer = runtime.signer
        receipt = runtime.store.list(ReceiptQuery("default", limit=1)).items[0].receipt
        pre = receipts.preimage(receipt)
        store, chain = runtime.store, receipts.chain_hash(receipt)
        count = iter(range(1 << 62))
        # The rule's program on what the runtime gives it: the fields of the input it reads.
        cel_in = fields_read(rule, cel_input("file_read", ctx, time.time_ns()))
        # The chain view's JCS bytes: seal joins them from member texts it already has, so what
        # the chain hash adds to the path is one SHA-256 over them.
        chain_view = canonical_json({k: receipt[k] for k in receipts._chain_keys(receipt)})
        # A ready receipt comes with its JCS text (``receipts.seal_stored``), as the kernel's do.
        text, first_id = canonical_text(receipt), receipt["receipt_id"]

        def build(head: ChainHead) -> AppendedReceipt:
            receipt_id = f"floor-{next(count)}"
            ready = dict(receipt, receipt_id=receipt_id)
            ready["lamport_clock"] = head.lamport + 1
            return AppendedReceipt(
                ready, chain, time.time_ns(), text.replace(first_id, receipt_id, 1)
            )

        self.fns = {
            "cel": lambda: rule.program.execute(cel_in),
            "jcs(receipt)": lambda: canonical_json(receipt),
            "ed25519-sign": lambda: signer.sign_hex(pre),
            "chain-hash": lambda: sha256_hex(chain_view),
            "sqlite-append": lambda: store.append("default", "floor", build),
        }
        self.samples: dict[str, list[float]] = {name: [] for name in self.fns}

    def sample(self, n: int) -> None:
        for name, fn in self.fns.items():
            out = self.samples[name]
            for _ in range(n):
                t = time.perf_counter_ns()
                fn()
                out.append((time.perf_counter_ns() - t) / 1000)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) for name, v in self.samples.items()}


def _request_bytes(port: int) -> bytes:
    body = json.dumps(BODY).encode()
    head = (
        f"POST /api/v1/evaluate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {ADMIN}\r\nX-Helm-Tenant-ID: default\r\n"
        f"X-Helm-Principal-ID: system-admin\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _evaluate_bytes(port: int, session: int) -> bytes:
    payload = _request_bytes(port).replace(b'"bench"', f'"bench{session % 4}"'.encode())
    return payload.replace(
        b"Content-Length: " + str(len(json.dumps(BODY))).encode(),
        b"Content-Length: " + str(len(json.dumps(BODY)) + 1).encode(),
    )


def _get_bytes(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> tuple[float, int]:
    """One request on a keep-alive connection: (milliseconds, status)."""
    start = time.perf_counter()
    writer.write(payload)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return (time.perf_counter() - start) * 1000, int(status_line.split()[1])


async def _client(
    port: int, path: str, deadline: float, latencies: list[float], errors: list[int], session: int
) -> None:
    payload = _evaluate_bytes(port, session) if path == EVALUATE else _get_bytes(port, path)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            elapsed, status = await _exchange(reader, writer, payload)
            latencies.append(elapsed)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


def _load(port: int, path: str, concurrency: int, duration: float, out: Queue[Any]) -> None:
    latencies: list[float] = []
    errors: list[int] = []

    async def main() -> None:
        deadline = time.perf_counter() + duration
        await asyncio.gather(
            *(_client(port, path, deadline, latencies, errors, n) for n in range(concurrency))
        )

    cpu = time.process_time()
    asyncio.run(main())
    out.put((latencies, errors, time.process_time() - cpu))


def _alternating(port: int, n: int, out: Queue[Any]) -> None:
    """One keep-alive connection, /healthz and evaluate in turn: latencies of each (ms)."""
    health: list[float] = []
    evaluate: list[float] = []

    async def main() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        get, post = _get_bytes(port, "/healthz"), _evaluate_bytes(port, 0)
        try:
            for i in range(n + n // 10):  # the first tenth warms up
                h = await _exchange(reader, writer, get)
                e = await _exchange(reader, writer, post)
                if h[1] != 200 or e[1] != 200:
                    raise RuntimeError(f"/healthz {h[1]}, evaluate {e[1]}")
                if i >= n // 10:
                    health.append(h[0])
                    evaluate.append(e[0])
        finally:
            writer.close()

    asyncio.run(main())
    out.put((health, evaluate))


EVALUATE = "/api/v1/evaluate"


def _run(target: Any, *args: object) -> Any:
    """``target(*args, queue)`` in a process of its own; what it puts on the queue."""
    queue: Queue[Any] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _measure_load(pid: int, port: int, path: str, concurrency: int, duration: float) -> None:
    _run(_load, port, path, concurrency, min(2.0, duration))  # warm-up
    user, system = _cpu_seconds(pid)
    latencies, errors, loader_cpu = _run(_load, port, path, concurrency, duration)
    user_after, system_after = _cpu_seconds(pid)
    user, system = user_after - user, system_after - system
    server_cpu, per_request = user + system, 1e6 / max(1, len(latencies))
    method = "POST" if path == EVALUATE else "GET"
    print(
        f"HTTP {method} {path}, {concurrency} keep-alive clients, {duration:g} s, 1 server process"
    )
    print(
        f"  {len(latencies) / duration:8.0f} requests/s   p50 {pct(latencies, 0.5):.2f} ms   "
        f"p99 {pct(latencies, 0.99):.2f} ms   non-200: {len(errors)}"
    )
    print(
        f"  CPU: server {server_cpu * per_request:.0f} us per request (user "
        f"{user * per_request:.0f} + system {system * per_request:.0f}; "
        f"{server_cpu / duration:.0%} of one core), load generator {loader_cpu / duration:.0%} "
        f"of one core ({os.cpu_count()} cores; the rest is other processes or idle)"
    )


def http(concurrency: int, duration: float, sequential: int, runtime_src: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {"HELM_ADMIN_API_KEY": ADMIN}
        if runtime_src is not None:
            from hostile_clients import _shadow_editable_install  # it imports this module

            env["PYTHONPATH"] = _shadow_editable_install(runtime_src.resolve(), root)
        print(f"runtime from {runtime_src or 'this checkout'}")
        with RuntimeProcess(write_policy(root), root / "data", env=env) as rt:
            assert rt.proc is not None
            _measure_load(rt.proc.pid, rt.port, EVALUATE, concurrency, duration)
            _measure_load(rt.proc.pid, rt.port, "/version", concurrency, duration)
            if sequential:
                health, evaluate = _run(_alternating, rt.port, sequential)
                h50, e50 = statistics.median(health), statistics.median(evaluate)
                print(f"1 keep-alive client, /healthz and evaluate in turn, n={sequential} each")
                print(
                    f"  /healthz p50 {h50:.3f} ms   evaluate p50 {e50:.3f} ms (p99 "
                    f"{pct(evaluate, 0.99):.3f})   evaluate - /healthz p50 {e50 - h50:.3f} ms"
                )


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far (Linux /proc; zeros elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--sequential",
        type=int,
        default=2000,
        help="requests of each kind for the /healthz vs evaluate figure (0: skip)",
    )
    parser.add_argument("--runtime-src", type=Path,
                        help="serve from this source tree (git archive REV helm_runbook | tar -x -C DIR)")  # fmt: skip
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-inprocess", action="store_true")
    opts = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    if not opts.skip_inprocess:
        in_process(opts.iterations)
    if not opts.skip_http:
        http(opts.concurrency, opts.duration, opts.sequential, opts.runtime_src)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
