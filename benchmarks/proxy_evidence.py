"""Proxy added latency and evidence-pack figures (issues 5 and 32). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/proxy_evidence.py [--requests 500] [--rounds 3] [--receipts 10000]
        [--runtime-src DIR] [--skip-evidence]

Added latency: the stand-in upstream runs in a process of its own (``helm-runbook
mock-upstream``) and ``helm-ai-kernel serve`` in another; one keep-alive client per path (raw
sockets, so the client's own cost is small and the same on both paths) sends the same chat
completion N times straight to the upstream and N times through the governed proxy (decide +
durable receipt + forward), and N times each ``POST /api/v1/evaluate`` and ``GET /healthz`` to the
same server, in R interleaved rounds so that a busy moment of the machine hits every path alike.
Added = proxied - direct, per round and over all samples; what the proxy adds beyond its
evaluate is proxied - evaluate. The anonymous receipt budget (600 a minute per address) is
lifted for the run: the benchmark measures latency, not the budget. ``--runtime-src`` runs the
runtime from another source tree (``git archive <commit> helm_runbook | tar -x -C DIR``), to
compare versions with the same clients.
Evidence: N receipts issued in-process, then ``POST /api/v1/evidence/export`` and
``POST /api/v1/evidence/verify`` timed through the ASGI app.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_clients import _shadow_editable_install
from hot_path import ADMIN, BODY, write_policy

from helm_runbook.runtime.app import create_app
from helm_runbook.runtime.server import build_runtime
from helm_runbook.runtime.settings import Settings
from helm_runbook.standins.process import RuntimeProcess, free_port

CHAT = {
    "model": "mock-model",
    "messages": [{"role": "user", "content": "how much does governance cost?"}],
}
HEADERS = {
    "Authorization": f"Bearer {ADMIN}",
    "X-Helm-Tenant-ID": "default",
    "X-Helm-Principal-ID": "system-admin",
}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class KeepAlive:
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads the answer."""

    def __init__(self, port: int, method: str, path: str, body: bytes = b"", headers: str = ""):
        self.port = port
        self.request = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._open()

    def _open(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def call(self) -> float:
        """Milliseconds for one request and its whole answer (reconnecting if the server closed
        the idle connection, outside the timing)."""
        start = time.perf_counter()
        self.sock.sendall(self.request)
        status = self.file.readline()
        if not status:
            self.sock.close()
            self._open()
            return self.call()
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = self.file.read(length)
        elapsed = (time.perf_counter() - start) * 1000
        if b" 200 " not in status:
            raise RuntimeError(f"{status!r} {body[:300]!r}")
        return elapsed

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def upstream_process() -> Iterator[int]:
    """``helm-runbook mock-upstream`` in its own process; yields its port."""
    port = free_port()
    cmd = [sys.executable, "-m", "helm_runbook.cli", "mock-upstream", "--port", str(port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mock upstream did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def proxy_latency(requests: int, rounds: int, runtime_src: Path | None = None) -> None:
    auth = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    chat = json.dumps(CHAT).encode()
    with tempfile.TemporaryDirectory() as tmp, upstream_process() as upstream_port:
        root = Path(tmp)
        policy = write_policy(root)
        (root / "policy" / "reference-pack.json").write_text(
            '{"pack_id": "bench", "version": 1, "runtime_actions": [{"action": "LLM_INFERENCE"}]}'
        )
        env = {
            "HELM_ADMIN_API_KEY": ADMIN,
            "HELM_ENABLE_OPENAI_PROXY": "1",
            "HELM_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1",
            "HELM_ANONYMOUS_RECEIPTS_PER_MINUTE": "0",
            "HELM_ANONYMOUS_RECEIPTS_PER_MINUTE_TOTAL": "0",
        }
        if runtime_src is not None:
            env["PYTHONPATH"] = _shadow_editable_install(runtime_src.resolve(), root)
        with RuntimeProcess(policy, root / "data", env=env) as rt:
            paths: dict[str, KeepAlive] = {
                "direct": KeepAlive(upstream_port, "POST", "/v1/chat/completions", chat),
                "proxied": KeepAlive(rt.port, "POST", "/v1/chat/completions", chat),
                "evaluate": KeepAlive(
                    rt.port, "POST", "/api/v1/evaluate", json.dumps(BODY).encode(), auth
                ),
                "healthz": KeepAlive(rt.port, "GET", "/healthz"),
            }
            for client in paths.values():  # warm-up: connections, caches, the upstream pool
                for _ in range(100):
                    client.call()
            samples: dict[str, list[list[float]]] = {name: [] for name in paths}
            for _ in range(rounds):
                for name, client in paths.items():
                    call: Callable[[], float] = client.call
                    samples[name].append([call() for _ in range(requests)])
            for client in paths.values():
                client.close()
    every = {name: [x for r in runs for x in r] for name, runs in samples.items()}
    print(
        f"proxy added latency: {requests} sequential calls per path and round, {rounds} rounds "
        "interleaved, keep-alive, upstream in its own process; runtime from "
        f"{runtime_src or 'this checkout'}"
    )
    for name, values in every.items():
        print(f"  {name:9s} p50 {pct(values, 0.5):6.3f} ms  p99 {pct(values, 0.99):6.3f} ms")

    def added(q: float, path: str = "proxied", base: str = "direct") -> tuple[float, list[float]]:
        per_round = [
            pct(a, q) - pct(b, q) for a, b in zip(samples[path], samples[base], strict=True)
        ]
        return statistics.median(per_round), per_round

    for label, path, base in (
        ("added (proxied - direct)", "proxied", "direct"),
        ("proxied - evaluate", "proxied", "evaluate"),
        ("evaluate - healthz", "evaluate", "healthz"),
    ):
        p50, r50 = added(0.5, path, base)
        p99, r99 = added(0.99, path, base)
        print(
            f"  {label:25s} median of rounds: p50 {p50:6.3f} ms  p99 {p99:6.3f} ms   "
            f"(rounds p50 {' '.join(f'{x:.3f}' for x in r50)}; p99 {' '.join(f'{x:.3f}' for x in r99)})"
        )
    ratio = pct(every["proxied"], 0.5) / pct(every["direct"], 0.5)
    print(f"  proxied / direct p50 ratio {ratio:.2f}")


def evidence(receipts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings.from_env(
            policy_path=write_policy(root), addr="127.0.0.1", port=0, data_dir=root / "data",
            environ={"HELM_ADMIN_API_KEY": ADMIN},
        )  # fmt: skip
        runtime = build_runtime(settings)
        start = time.perf_counter()
        for n in range(receipts):
            runtime.kernel.evaluate(
                tenant_id="default", principal="system-admin", session_id=f"s{n % 10}", action="file_read",
                resource="E1", args={"path": "/etc/hostname"}, context={},
            )  # fmt: skip
        issue_s = time.perf_counter() - start
        client = TestClient(create_app(runtime))
        exports, verifies = [], []
        for _ in range(3):
            start = time.perf_counter()
            pack = client.post("/api/v1/evidence/export", headers=HEADERS, json={}).content
            exports.append(time.perf_counter() - start)
            start = time.perf_counter()
            verdict = client.post("/api/v1/evidence/verify", content=pack).json()["verdict"]
            verifies.append(time.perf_counter() - start)
            assert verdict == "PASS"
        runtime.store.close()
    print(
        f"evidence pack of {receipts} receipts ({len(pack) / 1e6:.2f} MB tar.gz); issuing them took {issue_s:.1f} s"
    )
    print(
        f"  export median {statistics.median(exports):.2f} s   verify median {statistics.median(verifies):.2f} s (3 runs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime-src", type=Path, help="run the runtime from this source tree")
    parser.add_argument("--skip-evidence", action="store_true")
    parser.add_argument("--receipts", type=int, default=10_000)
    opts = parser.parse_args()
    proxy_latency(opts.requests, opts.rounds, opts.runtime_src)
    if not opts.skip_evidence:
        evidence(opts.receipts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
