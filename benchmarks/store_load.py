"""HTTP load on the receipt stores, and the crash audit (issue 8). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/store_load.py                 # every configuration, 3 runs each
    .venv/bin/python benchmarks/store_load.py --runs 1 --requests 1000

Configurations: SQLite with one replica; PostgreSQL (a throwaway server from Debian's package) with
one and with two replicas on the same database. Each run: a fresh data dir or database, W
keep-alive client threads in this process sending governed ``POST /api/v1/evaluate`` over S shared
sessions, N requests. Medians over the runs of requests/s, p50 and p99.

Crash audit: the same load; one replica is SIGKILLed once 150 receipts are stored, restarted, and
everything stored is checked against what was acknowledged with 200 (lost must be 0), chain by
chain, signature by signature.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nacl.signing import SigningKey

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # tests.postgres_server, tests.conftest

from helm_runbook.formats.keys import Signer
from helm_runbook.standins.process import RuntimeProcess
from helm_runbook.tools.loadtest import LoadResult, audit, run_load, wait_for_receipts
from tests.conftest import ALLOW_FILE_READ, CREDENTIALS, default_env, write_policy
from tests.postgres_server import PostgresServer, postgres_bin


@contextmanager
def replicas(count: int, database_url: str | None) -> Iterator[tuple[list[RuntimeProcess], str]]:
    """``count`` runtime processes sharing one root key (and one database when given)."""
    with tempfile.TemporaryDirectory(prefix="helm-bench-") as tmp:
        root = Path(tmp)
        policy = write_policy(root / "policy", ALLOW_FILE_READ)
        seed = SigningKey.generate()
        env = {**default_env(), "HELM_LOG_FORMAT": "json"}
        if database_url:
            env["DATABASE_URL"] = database_url
        running = []
        for n in range(count):
            data = root / f"replica-{n}"
            data.mkdir()
            (data / "root.key").write_text(seed.encode().hex())
            os.chmod(data / "root.key", 0o600)
            running.append(RuntimeProcess(policy, data, env=env).start())
        try:
            yield running, Signer(seed).public_key_hex
        finally:
            for replica in running:
                replica.stop()


def measure(
    config: str, count: int, url_for: Callable[[], str | None], args: argparse.Namespace
) -> None:
    results: list[LoadResult] = []
    for _ in range(args.runs):
        with replicas(count, url_for()) as (running, _public):
            results.append(run_load([r.url for r in running], CREDENTIALS, workers=args.workers,
                                    requests=args.requests, sessions=args.sessions, deadline_s=60))  # fmt: skip
    rps = statistics.median(r.requests_per_s for r in results)
    p50 = statistics.median(r.percentile_ms(0.50) for r in results)
    p99 = statistics.median(r.percentile_ms(0.99) for r in results)
    errors = sum(
        sum(n for s, n in r.statuses.items() if s != 200) + r.connection_errors for r in results
    )
    print(
        f"{config:<28} {rps:>9,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   non-200 {errors}",
        flush=True,
    )


def crash(
    config: str, count: int, url_for: Callable[[], str | None], args: argparse.Namespace
) -> None:
    with replicas(count, url_for()) as (running, public):
        victim = running[-1]
        stop = threading.Event()
        results: list[LoadResult] = []

        def load(urls: list[str], stopper: threading.Event | None) -> None:
            results.append(run_load(urls, CREDENTIALS, workers=4, requests=args.requests // 2,
                                    sessions=3, deadline_s=30, stop=stopper))  # fmt: skip

        threads = [threading.Thread(target=load, args=([victim.url], stop))]
        threads += [threading.Thread(target=load, args=([r.url], None)) for r in running[:-1]]
        for thread in threads:
            thread.start()
        wait_for_receipts(victim.url, CREDENTIALS, 150)
        victim.kill()
        for thread in threads:
            thread.join(60)
        victim.start()
        acked = [rid for r in results for rid in r.acked]
        report = audit(victim.url, CREDENTIALS, acked, public)
        print(f"{config:<28} {report.summary()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=16)
    args = parser.parse_args()
    bin_dir = postgres_bin()
    print(f"load: {args.requests} governed evaluates, {args.workers} client threads, {args.sessions} sessions, "
          f"median of {args.runs} runs; {os.cpu_count()} cores\n", flush=True)  # fmt: skip
    measure("sqlite, 1 replica", 1, lambda: None, args)
    if bin_dir is None:
        print("postgres: not installed (make system-deps)")
        return 0
    with PostgresServer(bin_dir) as pg:
        measure("postgres, 1 replica", 1, pg.create_database, args)
        measure("postgres, 2 replicas", 2, pg.create_database, args)
        print("\ncrash audit (SIGKILL one replica mid-load, restart, audit):")
        crash("sqlite, 1 replica", 1, lambda: None, args)
        crash("postgres, 2 replicas", 2, pg.create_database, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
