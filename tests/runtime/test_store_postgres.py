"""Start-up of the PostgreSQL receipt store against a database it cannot use (no server needed)."""

from __future__ import annotations

import socket
import threading

import pytest

from helm_runbook.runtime.store.base import StoreUnavailable
from helm_runbook.runtime.store.postgres import PostgresReceiptStore


def test_a_database_that_drops_the_connection_is_reported_after_one_attempt() -> None:
    """The pool retried a failed connect until its timeout (10 s by default) before start-up
    failed; one failed ping now ends it with the reason."""
    accepted: list[int] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port = server.getsockname()[1]
        done = threading.Event()

        def drop_every_connection() -> None:
            while not done.is_set() and len(accepted) < 100:
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                accepted.append(1)
                conn.close()

        thread = threading.Thread(target=drop_every_connection, daemon=True)
        thread.start()
        try:
            with pytest.raises(StoreUnavailable, match=f"receipt database 127.0.0.1:{port}/helm"):
                PostgresReceiptStore(
                    f"postgresql://helm@127.0.0.1:{port}/helm?sslmode=disable", connect_timeout_s=3
                )
        finally:
            done.set()
            thread.join(5)
    assert len(accepted) == 1, f"{len(accepted)} connection attempts"
