"""Proxy added latency and evidence-pack figures (issue 5). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/proxy_evidence.py [--requests 500] [--receipts 10000]

Added latency: the same chat completion sent N times sequentially straight to the stand-in
upstream and through ``helm-ai-kernel serve``'s governed proxy (decide + durable receipt +
forward); the difference of the medians (and p99s) is what governance adds.
Evidence: N receipts issued in-process, then ``POST /api/v1/evidence/export`` and
``POST /api/v1/evidence/verify`` timed through the ASGI app.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hot_path import ADMIN, write_policy

from helm_runbook.runtime.app import create_app
from helm_runbook.runtime.server import build_runtime
from helm_runbook.runtime.settings import Settings
from helm_runbook.standins.mock_upstream import MockUpstreamServer
from helm_runbook.standins.process import RuntimeProcess

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


def timed(client: httpx.Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.post(url, json=CHAT)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return out


def proxy_latency(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, MockUpstreamServer() as upstream:
        root = Path(tmp)
        policy = write_policy(root)
        (root / "policy" / "reference-pack.json").write_text(
            '{"pack_id": "bench", "version": 1, "runtime_actions": [{"action": "LLM_INFERENCE"}]}'
        )
        env = {
            "HELM_ADMIN_API_KEY": ADMIN,
            "HELM_ENABLE_OPENAI_PROXY": "1",
            "HELM_UPSTREAM_URL": upstream.url,
        }
        with RuntimeProcess(policy, root / "data", env=env) as rt, httpx.Client() as client:
            timed(client, f"{upstream.url}/chat/completions", 50)  # warm-up both paths
            timed(client, f"{rt.url}/v1/chat/completions", 50)
            direct = timed(client, f"{upstream.url}/chat/completions", requests)
            proxied = timed(client, f"{rt.url}/v1/chat/completions", requests)
    print(f"proxy added latency, {requests} sequential chat completions each way")
    print(f"  direct   p50 {pct(direct, 0.5):6.2f} ms  p99 {pct(direct, 0.99):6.2f} ms")
    print(f"  proxied  p50 {pct(proxied, 0.5):6.2f} ms  p99 {pct(proxied, 0.99):6.2f} ms")
    print(
        f"  added    p50 {pct(proxied, 0.5) - pct(direct, 0.5):6.2f} ms  p99 {pct(proxied, 0.99) - pct(direct, 0.99):6.2f} ms"
    )


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
    parser.add_argument("--receipts", type=int, default=10_000)
    opts = parser.parse_args()
    proxy_latency(opts.requests)
    evidence(opts.receipts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
