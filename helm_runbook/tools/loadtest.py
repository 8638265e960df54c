"""A bounded governed load against one or more runtime replicas, and the audit of what survived.

``run_load`` keeps ``workers`` keep-alive connections busy with ``POST /api/v1/evaluate`` on a few
shared sessions, spread over the replicas' URLs, until ``requests`` are sent or ``deadline_s``
passes (or ``stop`` is set). It records every receipt acknowledged with 200. ``audit`` lists what
the store holds and checks that every acknowledged receipt is there, that each session's chain is
contiguous, and that every signature verifies with the trust root. Crash tests and the load
benchmark share both.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helm_runbook.errors import TargetUnavailable
from helm_runbook.tools.client import PAGE_LIMIT, Credentials, RuntimeClient
from helm_runbook.tools.verify import ReceiptVerification, verify_receipts


@dataclass
class LoadResult:
    acked: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    connection_errors: int = 0
    duration_s: float = 0.0

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        p50 = 1000 * statistics.median(self.latencies_s) if self.latencies_s else 0.0
        return (f"{len(self.latencies_s)} requests in {self.duration_s:.2f}s: {self.requests_per_s:,.0f} req/s, "
                f"p50 {p50:.2f} ms, p99 {self.percentile_ms(0.99):.2f} ms, statuses {dict(self.statuses)}, "
                f"connection errors {self.connection_errors}")  # fmt: skip


def run_load(
    urls: Sequence[str], credentials: Credentials, *, workers: int = 8, requests: int = 2000, sessions: int = 3,
    deadline_s: float = 30.0, stop: threading.Event | None = None, tool: str = "file_read",
) -> LoadResult:  # fmt: skip
    """Bounded in count and time; a worker whose replica goes away stops (the crash tests kill one)."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(requests))
    started = time.monotonic()
    deadline = started + deadline_s
    stop = stop or threading.Event()

    def worker(n: int) -> None:
        with RuntimeClient(urls[n % len(urls)], credentials=credentials) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {"tool": tool, "effect_level": "E1", "session_id": f"load-{i % sessions}",
                        "args": {"path": "/etc/hostname", "i": i}}  # fmt: skip
                sent = time.perf_counter()
                try:
                    response = client.send("POST", "/api/v1/evaluate", json=body)
                except TargetUnavailable:
                    with lock:
                        result.connection_errors += 1
                    return
                elapsed = time.perf_counter() - sent
                with lock:
                    result.statuses[response.status_code] += 1
                    result.latencies_s.append(elapsed)
                    if response.status_code == 200:
                        result.acked.append(response.json()["receipt_id"])

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline_s + 15)
    result.duration_s = time.monotonic() - started
    return result


def wait_for_receipts(
    url: str, credentials: Credentials, at_least: int, *, timeout_s: float = 20.0
) -> int:
    """Poll ``GET /api/v1/receipts`` until it lists ``at_least`` receipts (a crash test kills
    mid-load from there); returns the count seen, which is lower when the timeout came first."""
    deadline = time.monotonic() + timeout_s
    count = 0
    with RuntimeClient(url, credentials=credentials) as client:
        while time.monotonic() < deadline:
            count = len(client.receipts_page(limit=PAGE_LIMIT)["receipts"])
            if count >= at_least:
                break
            time.sleep(0.05)
    return count


@dataclass
class Audit:
    acknowledged: int
    stored: int
    lost: list[str]
    verification: ReceiptVerification

    @property
    def ok(self) -> bool:
        return not self.lost and self.verification.ok

    def summary(self) -> str:
        return (f"acknowledged {self.acknowledged}, stored {self.stored}, lost {len(self.lost)}, "
                f"sessions {self.verification.sessions}, verification {'ok' if self.verification.ok else 'FAILED'}")  # fmt: skip


def audit(url: str, credentials: Credentials, acked: Sequence[str], public_key_hex: str) -> Audit:
    """Everything the store serves, checked against what was acknowledged and the trust root."""
    with RuntimeClient(url, credentials=credentials) as client:
        receipts: list[dict[str, Any]] = client.receipts()
    stored = {r["receipt_id"] for r in receipts}
    lost = [rid for rid in acked if rid not in stored]
    return Audit(len(acked), len(receipts), lost, verify_receipts(receipts, public_key_hex))
