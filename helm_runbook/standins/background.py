"""Serve an ASGI app on 127.0.0.1 from a background thread (stand-in upstreams, control planes).

with BackgroundServer(app) as server:
    httpx.get(server.base_url + "/path")
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port); InputError naming the address
    when it cannot be had (in use, not an address of this machine)."""
    from helm_runbook.errors import InputError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         fix="choose a free --port (0 picks one) and an address of this machine for --host") from exc  # fmt: skip
    return sock


def serve_forever(app: Any, sock: socket.socket, what: str, *, base_path: str = "") -> None:
    """Serve ``app`` on ``sock`` in the foreground until interrupted, after printing the URL it
    listens on (what an operator or a script waiting for it reads first)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    base = f"; base URL {url}{base_path}" if base_path else ""
    print(f"{what} listening on {url}{base} (Ctrl-C stops it)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


class BackgroundServer:
    def __init__(
        self, app: Any, *, port: int = 0, on_shutdown: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """``on_shutdown`` runs on the server's loop after it stops (closing clients it made)."""
        self.app = app
        self._on_shutdown = on_shutdown
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock])
        finally:
            if self._on_shutdown is not None:
                await self._on_shutdown()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"background server on :{self.port} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (before the owning process or notebook kernel shuts down)."""
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
