"""What many requests add up to (issue 30): one budget of buffered body bytes for the process,
a budget of receipts anonymous callers may write, and a health port that answers from its own
thread while clients flood the proxy with large bodies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helm_runbook.runtime.context import Runtime
from helm_runbook.standins.hostile import HealthWatch, RssWatch, held_uploads, proxy_body_flood
from helm_runbook.standins.process import RuntimeProcess
from tests.conftest import (
    ALLOW_FILE_READ,
    TENANT_HEADERS,
    RuntimeFactory,
    default_env,
    write_policy,
)

Clients = Callable[[Runtime], TestClient]


def test_a_body_the_process_budget_cannot_take_is_a_503_with_retry_after(
    make_runtime: RuntimeFactory, client_for: Clients
) -> None:
    runtime = make_runtime(ALLOW_FILE_READ, env={"HELM_BODY_BUDGET_BYTES": "1000"})
    client = client_for(runtime)
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s", "args": {"p": "x" * 2000}}
    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-helm-limiter-reason"] == "BODY_BUDGET_EXHAUSTED"
    assert runtime.body_budget.held == 0  # released with the answer
    small = {**body, "args": {}}
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=small).status_code == 200
    assert runtime.body_budget.held == 0 and runtime.body_budget.peak > 0


def test_anonymous_receipts_per_address_are_budgeted_and_nothing_is_written_past_it(
    make_runtime: RuntimeFactory, client_for: Clients
) -> None:
    env = {"HELM_ENABLE_OPENAI_PROXY": "1", "HELM_ANONYMOUS_RECEIPTS_PER_MINUTE": "5"}
    runtime = make_runtime(ALLOW_FILE_READ, env=env)
    client = client_for(runtime)
    statuses = [
        client.post("/v1/chat/completions", json={"model": "m", "messages": []}).status_code
        for _ in range(8)
    ]
    assert statuses[:5] == [503] * 5 and statuses[5:] == [429] * 3, statuses  # 503: no upstream
    assert runtime.store.count() == 5
    refused = client.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert refused.headers["x-helm-limiter-reason"] == "ANONYMOUS_RECEIPT_BUDGET_EXCEEDED"
    # authenticated evaluate calls spend none of it
    evaluate = {"tool": "file_read", "effect_level": "E1", "session_id": "s", "args": {}}
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=evaluate).status_code == 200


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RuntimeProcess]:
    env = {
        **default_env(),
        "HELM_ENABLE_OPENAI_PROXY": "1",
        "HELM_BODY_BUDGET_BYTES": str(24 << 20),
    }
    proc = RuntimeProcess(
        write_policy(tmp_path / "policy", ALLOW_FILE_READ), tmp_path / "data", env=env
    )
    yield proc.start()
    proc.stop()


@pytest.mark.slow
def test_uploads_held_at_their_last_byte_are_bounded_by_the_body_budget(
    server: RuntimeProcess,
) -> None:
    assert server.proc is not None
    with RssWatch(server.proc.pid) as rss, HealthWatch(server.health_url) as health:
        seen = held_uploads(server.url, connections=12, size=8 << 20, hold=1.0)
    held = seen.statuses.count(0)
    assert held <= 3, seen.statuses  # 24 MiB of budget: three 8 MiB bodies at most
    assert seen.statuses.count(503) >= 9, seen.statuses
    assert rss.peak_mib - rss.baseline_mib < 80, (rss.baseline_mib, rss.peak_mib)
    assert not health.failures


@pytest.mark.slow
def test_the_health_port_answers_while_clients_flood_the_proxy_with_large_bodies(
    server: RuntimeProcess,
) -> None:
    with HealthWatch(server.health_url) as health:
        seen = proxy_body_flood(server.url, clients=8, size=6 << 20, seconds=4.0)
    assert seen.figures["requests"] > 0
    assert not health.failures, health.failures  # every probe within the readiness timeout


@pytest.mark.slow
def test_the_health_port_never_waits_on_a_commit_stuck_behind_the_database_lock(
    server: RuntimeProcess, tmp_path: Path
) -> None:
    """Another writer holds SQLite's write lock: a receipt commit waits on it (up to the busy
    timeout) with the store's lock held, and on the API port's loop; probes answer meanwhile."""
    import sqlite3
    import threading

    import httpx

    blocker = sqlite3.connect(tmp_path / "data" / "helm.db", isolation_level=None)
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s", "args": {}}
    statuses: list[int] = []
    with HealthWatch(server.health_url) as health:
        blocker.execute("BEGIN IMMEDIATE")
        writer = threading.Thread(
            target=lambda: statuses.append(
                httpx.post(server.url + "/api/v1/evaluate", headers=TENANT_HEADERS, json=body,
                           timeout=30).status_code
            )
        )  # fmt: skip
        writer.start()
        time.sleep(2.5)
        blocker.execute("ROLLBACK")
        writer.join(30)
    blocker.close()
    assert statuses == [200], statuses
    assert not health.failures, health.failures  # within the readiness timeout, not after 2.5 s


@pytest.mark.slow
def test_a_slow_sender_holds_only_the_bytes_it_sent_not_the_length_it_announced(
    server: RuntimeProcess,
) -> None:
    import socket

    import httpx

    head = (b"POST /api/v1/evidence/verify HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: " + str(20 << 20).encode() + b"\r\n\r\n.")  # fmt: skip
    host, port = server.url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port))) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(head)
        time.sleep(0.3)
        response = httpx.post(server.url + "/api/v1/evidence/verify", content=bytes(10 << 20),
                              timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text[:200]  # verified (FAIL), not refused
    finally:
        for sock in slow:
            sock.close()


def test_the_health_watch_fails_a_probe_the_kubelet_would_fail() -> None:
    """HealthWatch's timeout is the chart's readiness timeout: a slower answer is a failed probe
    there as here (the bound the hostile tests hold the health port to)."""
    import yaml

    from helm_runbook.chart import CHART_DIR
    from helm_runbook.standins.hostile import READINESS_TIMEOUT_S

    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["probes"]["readiness"]["timeoutSeconds"] == READINESS_TIMEOUT_S
