"""The local target's pod: start-to-ready time and a request's round trip through the network
relays (``targets/netrelay.py``: host 127.0.0.1 → unix socket → the pod's own loopback).
Prints figures; asserts nothing.

.venv/bin/python benchmarks/local_target.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from helm_runbook.chart import CHART_DIR, render
from helm_runbook.targets.local import LocalTarget


def median_ms(url: str, n: int = 300) -> float:
    """Median GET latency on one keep-alive connection (what a port-forward client sees)."""
    with httpx.Client() as client:
        client.get(url)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            client.get(url)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = LocalTarget(Path(tmp))
        target.create_secret(
            "helm-auth", {"HELM_ADMIN_API_KEY": "a" * 32, "HELM_SERVICE_API_KEY": "s" * 32}
        )
        target.apply(render(CHART_DIR, {"helm": {"auth": {"existingSecret": "helm-auth"}}}))
        try:
            start = time.perf_counter()
            target.start_pod()
            target.wait_ready()
            print(
                f"pod start to ready (init container, relays, runtime): {time.perf_counter() - start:.2f} s"
            )
            print(
                f"GET /health through the relays: median {median_ms(target.url('health') + '/health'):.3f} ms"
            )
        finally:
            target.close()


if __name__ == "__main__":
    main()
