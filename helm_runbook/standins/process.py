"""Run ``helm-ai-kernel serve`` as a child process, the way a container runs it.

Used by the real-server tests, the HTTP benchmark and the runbooks' local target: start it with
the chart's arguments, wait for its ready record, and stop it gracefully (SIGTERM) or as a crash
(SIGKILL) to prove what survives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (bound and released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RuntimeExited(RuntimeError):
    """The runtime exited before it was ready; ``stderr`` holds its last words."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"helm-ai-kernel exited with {returncode}: {stderr.strip()[-2000:]}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass
class RuntimeProcess:
    """One ``helm-ai-kernel serve`` child on 127.0.0.1 with its own ports."""

    policy: Path
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    addr: str = "127.0.0.1"
    port: int = 0
    health_port: int = 0
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://{self.addr}:{self.health_port}"

    def start(self, timeout: float = 20.0) -> RuntimeProcess:
        """Start and wait for the ready record; raise RuntimeExited if start-up is refused."""
        self.port = self.port or free_port(self.addr)
        self.health_port = self.health_port or free_port(self.addr)
        env = {**os.environ, **self.env, "HELM_HEALTH_PORT": str(self.health_port)}
        args = [
            sys.executable, "-m", "helm_runbook.runtime", "serve",
            "--policy", str(self.policy), "--addr", self.addr, "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--json",
        ]  # fmt: skip
        self.log_path = self.log_path or self.data_dir.parent / f"runtime-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.read()
            if chunk:
                buffer += chunk
                if b"\n" in buffer:
                    record: dict[str, Any] = json.loads(buffer.split(b"\n", 1)[0])
                    if record.get("ready"):
                        return self
            if self.proc.poll() is not None:
                stderr = self.read_log()
                code = self._signal(signal.SIGKILL, 1.0)
                raise RuntimeExited(code, stderr)
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(
            f"helm-ai-kernel not ready within {timeout:g}s: {self.read_log()[-2000:]}"
        )

    def read_log(self) -> str:
        if self._log:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 10.0) -> int:
        """Graceful stop (SIGTERM, like a pod deletion); returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """Crash stop (SIGKILL): nothing gets a chance to flush."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None
        self.proc = None
        return code

    def __enter__(self) -> RuntimeProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
