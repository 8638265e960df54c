"""A throwaway PostgreSQL server on 127.0.0.1 from Debian's ``postgresql`` package: ``initdb`` into
a temporary directory, ``pg_ctl start``, one database per test that asks. Never a mock.

``make system-deps`` (and so ``.ci/run``) installs the package when it is missing; as root the
server runs as the package's ``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory (Debian keeps it off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as pg: pg.url("db")``; ``stop()``/``start()`` simulate an outage."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = _free_port()
        self._tmp = tempfile.mkdtemp(prefix="helm-pg-")
        self.data = Path(self._tmp) / "data"
        self.socket_dir = Path(self._tmp) / "run"
        self._user = "postgres" if os.geteuid() == 0 else None
        self._databases = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*(["runuser", "-u", self._user, "--"] if self._user else []), *args]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def __enter__(self) -> PostgresServer:
        self.socket_dir.mkdir(parents=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            for path in (Path(self._tmp), self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\nmax_connections = 200\n"
                "shared_buffers = 64MB\n"
            )
        self.start()
        return self

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(Path(self._tmp) / "server.log"),
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False
        )

    def create_database(self, name: str | None = None) -> str:
        """A fresh database; returns its URL (sslmode=disable: loopback, non-production)."""
        self._databases += 1
        name = name or f"helm{self._databases}"
        self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-c", f'CREATE DATABASE "{name}"')  # fmt: skip
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def __exit__(self, *exc: object) -> None:
        self.stop("immediate")
        with contextlib.suppress(OSError):
            shutil.rmtree(self._tmp)


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL is not installed: run `make system-deps` (apt-get install postgresql)"
        )
    with PostgresServer(bin_dir) as server:
        yield server
