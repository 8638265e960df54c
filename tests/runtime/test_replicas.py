"""Several runtime processes on one PostgreSQL database, as ``replicaCount > 1`` runs them: under
concurrent load on shared sessions, with one replica SIGKILLed mid-load and restarted, every
receipt acknowledged with 200 is stored, every chain is contiguous and every signature verifies.
The database going away answers 503 with the reason, writes nothing half-way, and service
resumes when it is back. Bounded in count and time; loopback only."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from helm_runbook.formats.keys import Signer
from helm_runbook.standins.process import RuntimeExited, RuntimeProcess
from helm_runbook.tools.loadtest import audit, run_load, wait_for_receipts
from tests.conftest import ALLOW_FILE_READ, CREDENTIALS, TENANT_HEADERS, default_env, write_policy
from tests.postgres_server import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _shared_root(data_dirs: list[Path]) -> str:
    """The same root.key in every replica's data dir (what the init container copies from the
    signing Secret); returns the public key."""
    seed = SigningKey.generate()
    for data in data_dirs:
        data.mkdir(parents=True)
        path = data / "root.key"
        path.write_text(seed.encode().hex())
        os.chmod(path, 0o600)
    return Signer(seed).public_key_hex


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[tuple[list[RuntimeProcess], str]]:
    policy = write_policy(tmp_path / "policy", ALLOW_FILE_READ)
    dirs = [tmp_path / "replica-a", tmp_path / "replica-b"]
    public = _shared_root(dirs)
    env = {
        **default_env(),
        "DATABASE_URL": pg_url,
        "HELM_DB_MAX_OPEN_CONNS": "4",
        "HELM_DB_MAX_IDLE_CONNS": "2",
    }
    running = [RuntimeProcess(policy, data, env=env) for data in dirs]
    for replica in running:
        replica.start()
    yield running, public
    for replica in running:
        replica.stop()


def test_two_replicas_keep_every_acknowledged_receipt_through_a_sigkill(
    replicas: tuple[list[RuntimeProcess], str],
) -> None:
    (a, b), public = replicas
    stop_b = threading.Event()
    results = {}

    def load(name: str, url: str, stop: threading.Event | None) -> None:
        results[name] = run_load(
            [url], CREDENTIALS, workers=4, requests=600, sessions=3, deadline_s=20, stop=stop
        )

    threads = [threading.Thread(target=load, args=("a", a.url, None)),
               threading.Thread(target=load, args=("b", b.url, stop_b))]  # fmt: skip
    for thread in threads:
        thread.start()
    assert wait_for_receipts(b.url, CREDENTIALS, 150) >= 150, (
        "load did not get going before the kill"
    )
    b.kill()  # mid-load: some of b's requests were in flight
    for thread in threads:
        thread.join(40)
    acked = results["a"].acked + results["b"].acked
    assert len(results["b"].acked) > 0 and len(results["a"].acked) > 0

    b.start()  # the replica comes back on the same database
    report = audit(b.url, CREDENTIALS, acked, public)
    assert report.lost == [], f"{len(report.lost)} acknowledged receipts lost: {report.summary()}"
    assert report.verification.ok, str(report.verification)
    assert report.verification.sessions == 3
    assert report.stored >= len(acked)
    assert set(results["a"].statuses) <= {200}, results["a"].statuses


def test_database_down_answers_503_and_service_resumes(
    replicas: tuple[list[RuntimeProcess], str], pg: PostgresServer
) -> None:
    (a, _b), public = replicas
    body = {
        "tool": "file_read",
        "effect_level": "E1",
        "session_id": "outage",
        "args": {"path": "/etc/hostname"},
    }
    with httpx.Client(base_url=a.url, headers=TENANT_HEADERS, timeout=30) as http:
        first = http.post("/api/v1/evaluate", json=body)
        assert first.status_code == 200
        pg.stop()
        try:
            down = http.post("/api/v1/evaluate", json=body)
            listing = http.get("/api/v1/receipts")
        finally:
            pg.start()
        assert down.status_code == 503, down.text
        assert "receipt" in down.json()["detail"].lower()
        assert listing.status_code == 503
        deadline = time.monotonic() + 20
        while (
            again := http.post("/api/v1/evaluate", json=body)
        ).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again.status_code == 200, again.text
    report = audit(
        a.url, CREDENTIALS, [first.json()["receipt_id"], again.json()["receipt_id"]], public
    )
    assert report.ok, report.summary()
    chain = [r for r in httpx.get(f"{a.url}/api/v1/receipts", headers=TENANT_HEADERS).json()["receipts"]
             if r["session_id"] == "outage"]  # fmt: skip
    assert [r["lamport_clock"] for r in chain] == [1, 2], "nothing half-written during the outage"


def test_production_refuses_a_database_url_without_tls(tmp_path: Path, pg_url: str) -> None:
    policy = write_policy(tmp_path / "policy", ALLOW_FILE_READ)
    data = tmp_path / "data"
    _shared_root([data])
    env = {
        **default_env(),
        "DATABASE_URL": pg_url,
        "HELM_PRODUCTION": "1",
        "EVIDENCE_SIGNING_KEY": "e" * 64,
    }
    with pytest.raises(RuntimeExited) as refused:
        RuntimeProcess(policy, data, env=env).start()
    assert "sslmode require, verify-ca or verify-full (got disable)" in str(refused.value)


def test_an_unreachable_database_refuses_start_up_naming_it(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy", ALLOW_FILE_READ)
    env = {
        **default_env(),
        "DATABASE_URL": "postgresql://helm@127.0.0.1:9/helm?sslmode=disable&connect_timeout=2",
    }
    with pytest.raises(RuntimeExited) as refused:
        RuntimeProcess(policy, tmp_path / "data", env=env).start(timeout=30)
    assert "cannot reach the receipt database 127.0.0.1:9/helm" in str(refused.value)
