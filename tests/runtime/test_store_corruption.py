"""A corrupt or unwritable SQLite store: a one-line refusal at start-up, and at run time readiness
fails (API and health port) and reads answer 503, instead of OK and 500s."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helm_runbook.runtime.app import create_health_app
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.server import StartupError
from helm_runbook.runtime.store import sqlite as sqlite_store
from tests.conftest import (
    ALLOW_FILE_READ,
    TENANT_HEADERS,
    RuntimeFactory,
    default_env,
    write_policy,
)

BODY = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "c",
    "args": {"path": "/etc/hostname"},
}


def _filled(
    make_runtime: RuntimeFactory, client_for: Callable[[Runtime], TestClient], data: Path
) -> Runtime:
    runtime = make_runtime(ALLOW_FILE_READ, data_dir=data)
    client = client_for(runtime)
    for _ in range(40):
        assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=BODY).status_code == 200
    return runtime


def _zero_page(path: Path, page: int) -> None:
    """Overwrite one 4 KiB page of the database file with zeros (a torn or lost write)."""
    with path.open("r+b") as f:
        f.seek((page - 1) * 4096)
        f.write(bytes(4096))


def test_a_corrupt_database_is_a_one_line_refusal_at_start_up(
    make_runtime: RuntimeFactory, client_for: Callable[[Runtime], TestClient], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    _filled(make_runtime, client_for, data).store.close()
    _zero_page(data / "helm.db", 2)
    with pytest.raises(StartupError, match="malformed") as refused:
        make_runtime(ALLOW_FILE_READ, data_dir=data)
    assert "\n" not in str(refused.value) and "move it aside" in str(refused.value)
    policy = write_policy(tmp_path / "policy", ALLOW_FILE_READ)
    run = subprocess.run(
        [sys.executable, "-m", "helm_runbook.runtime", "serve", "--policy", str(policy),
         "--addr", "127.0.0.1", "--port", "0", "--data-dir", str(data)],
        env={**os.environ, **default_env(), "HELM_HEALTH_PORT": "1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert [line for line in run.stderr.splitlines() if "malformed" in line], run.stderr


def _checkpoint(db: sqlite3.Connection) -> None:
    """Move every page from the WAL into the database file, so the page zeroed next is the one
    read. A reader elsewhere (the health port's connection) can make one attempt report busy and
    leave the WAL in place: retry, bounded, until it completes."""
    for _ in range(200):
        busy, _log, _moved = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return
        time.sleep(0.01)
    raise AssertionError("the WAL could not be checkpointed within 2 s (a reader held it)")


def _ready(runtime: Runtime, client: TestClient) -> list[int]:
    health = TestClient(create_health_app(None, runtime.store.health))
    return [
        health.get("/health").status_code,
        health.get("/healthz").status_code,
        client.get("/health").status_code,
        client.get("/healthz").status_code,
    ]


def test_a_database_malformed_at_run_time_fails_readiness_and_reads_503(
    make_runtime: RuntimeFactory,
    client_for: Callable[[Runtime], TestClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_store, "HEALTH_CACHE_S", 0.0, raising=False)
    runtime = _filled(make_runtime, client_for, tmp_path / "data")
    client = client_for(runtime)
    assert _ready(runtime, client) == [200] * 4
    db: sqlite3.Connection = runtime.store._db  # type: ignore[attr-defined]
    _checkpoint(db)
    _zero_page(tmp_path / "data" / "helm.db", 2)
    db.execute("PRAGMA shrink_memory")  # drop the page cache: the next read comes from the file
    assert _ready(runtime, client) == [503] * 4
    assert "malformed" in client.get("/health").text
    listed = client.get("/api/v1/receipts", headers=TENANT_HEADERS)
    assert listed.status_code == 503 and "malformed" in listed.json()["detail"]
    written = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=BODY)
    assert written.status_code == 503, "no write goes into a malformed database"


def test_a_read_only_store_fails_readiness_until_it_is_writable_again(
    make_runtime: RuntimeFactory,
    client_for: Callable[[Runtime], TestClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_store, "HEALTH_CACHE_S", 0.0, raising=False)
    monkeypatch.setattr(sqlite_store, "STORE_FAULT_HOLD_S", 0.0, raising=False)
    runtime = _filled(make_runtime, client_for, tmp_path / "data")
    client = client_for(runtime)
    db: sqlite3.Connection = runtime.store._db  # type: ignore[attr-defined]
    db.execute("PRAGMA query_only = ON")  # SQLITE_READONLY, what a read-only volume returns
    assert _ready(runtime, client) == [503] * 4
    assert "read-only" in client.get("/health").text
    db.execute("PRAGMA query_only = OFF")
    assert _ready(runtime, client) == [200] * 4
