"""Byte relays that give a pod in its own network namespace exactly its declared ports.

The local target starts the pod with ``bwrap --unshare-net`` (a namespace with only a loopback)
and joins it to the host over unix sockets in one directory bound into the sandbox:

- ``host`` (a detached process on the host, cwd = that directory): each forwarded container port
  listens on the host's 127.0.0.1:PORT and is relayed to ``in-PORT.sock``; each allowed egress
  port listens on ``out-PORT.sock`` and is relayed to the host's 127.0.0.1:PORT.
- ``pod`` (inside the sandbox, the container's parent): ``in-PORT.sock`` is relayed to
  127.0.0.1:PORT in the pod's namespace, and the pod's 127.0.0.1:PORT of each egress port to
  ``out-PORT.sock``; it runs the container's command and exits with its code.

Nothing else crosses: no other host port, interface or name server is reachable from the pod.
Each relay takes at most MAX_CONNECTIONS at once, and a connection idle for IDLE_TIMEOUT_S ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

MAX_CONNECTIONS = 256
IDLE_TIMEOUT_S = 3600.0
CONNECT_TIMEOUT_S = 5.0
CHUNK = 1 << 16
# asyncio (about 0.03 s to import) is imported where it is used: the pod side starts the
# container before it needs it.
Connector = Callable[[], Awaitable[tuple["asyncio.StreamReader", "asyncio.StreamWriter"]]]
Handler = Callable[["asyncio.StreamReader", "asyncio.StreamWriter"], Awaitable[None]]


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction until EOF (passed on as a half-close), an error or the idle timeout."""
    import asyncio

    try:
        while data := await asyncio.wait_for(reader.read(CHUNK), IDLE_TIMEOUT_S):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, TimeoutError):
        writer.close()


def _relay(connect: Connector, slots: asyncio.Semaphore) -> Handler:
    """A connection handler that splices each accepted connection onto ``connect()``."""
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.close()  # over the connection bound: refused, as a full backlog would be
            return
        async with slots:
            try:
                far_reader, far_writer = await asyncio.wait_for(connect(), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError):
                writer.close()
                return
            try:
                await asyncio.gather(_copy(reader, far_writer), _copy(far_reader, writer))
            except asyncio.CancelledError:
                pass  # the relay is stopping with the pod: its connections end with it
            finally:
                for end in (writer, far_writer):
                    end.close()

    return handle


def _tcp(port: int) -> Connector:
    import asyncio

    return lambda: asyncio.open_connection("127.0.0.1", port)


def _unix(path: str) -> Connector:
    import asyncio

    return lambda: asyncio.open_unix_connection(path)


Listener = tuple[socket.socket, str | int]  # a listening socket and where it relays to


def _listen(address: str | int) -> socket.socket:
    """A listening socket before any event loop exists: a unix socket path, or a 127.0.0.1 port.
    Connections that come before the relay serves wait in its backlog."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address if isinstance(address, str) else ("127.0.0.1", address))
        sock.listen(MAX_CONNECTIONS)
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(listeners: list[Listener]) -> None:
    """Relay each listener: a TCP port to its unix socket, a unix socket to its TCP port."""
    import asyncio

    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    for sock, far in listeners:
        connect = _tcp(far) if isinstance(far, int) else _unix(far)
        if sock.family == socket.AF_UNIX:
            await asyncio.start_unix_server(_relay(connect, slots), sock=sock)
        else:
            await asyncio.start_server(_relay(connect, slots), sock=sock)


def _host(inbound: list[int], outbound: list[int]) -> None:
    """Listen first (the target waits for these sockets), then load asyncio and serve."""
    listeners: list[Listener] = [(_listen(port), f"in-{port}.sock") for port in inbound]
    listeners += [(_listen(f"out-{port}.sock"), port) for port in outbound]
    import asyncio

    async def serve() -> None:
        await _serve(listeners)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(serve())


def _pod(directory: Path, inbound: list[int], outbound: list[int], command: list[str]) -> int:
    """Listen on every relay socket, start the container, and only then load asyncio to serve
    them: the container's own start-up (the runtime's imports) overlaps that import instead of
    waiting for it."""
    listeners: list[Listener] = [
        (_listen(str(directory / f"in-{port}.sock")), port) for port in inbound
    ]
    for port in outbound:
        try:
            listeners.append((_listen(port), str(directory / f"out-{port}.sock")))
        except OSError as exc:  # e.g. a port below 1024 for the pod's unprivileged user
            # The container still starts; a connection to that port is refused, as it would
            # be for an upstream that is down, and the runtime reports it when it is used.
            print(f"netrelay: no egress to 127.0.0.1:{port} inside the pod ({exc.strerror})",
                  file=sys.stderr, flush=True)  # fmt: skip
    # A pod deletion signals every process of the pod, the container included: passing it on
    # would be a second SIGTERM (uvicorn's "force exit"). So the relay waits for the container.
    # A Python handler, not SIG_IGN: the container's exec resets it instead of inheriting it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    proc = subprocess.Popen(command)
    import asyncio

    async def serve() -> int:
        await _serve(listeners)
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, lambda: None)
        code = await asyncio.to_thread(proc.wait)
        return code if code >= 0 else 128 - code

    return asyncio.run(serve())


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helm_runbook.targets.netrelay", description=__doc__
    )
    parser.add_argument("side", choices=["host", "pod"])
    parser.add_argument("directory", type=Path, help="the socket directory (as this side sees it)")
    parser.add_argument("--in", dest="inbound", type=_ports, default=[], help="forwarded ports")
    parser.add_argument("--out", dest="outbound", type=_ports, default=[], help="egress ports")
    args = sys.argv[1:] if argv is None else argv
    split = args.index("--") if "--" in args else len(args)
    opts = parser.parse_args(args[:split])
    opts.command = args[split + 1 :]  # the container's own flags are never ours
    if opts.side == "host":
        os.chdir(opts.directory)  # relative socket names: a deep workdir stays under 108 bytes
        with contextlib.suppress(KeyboardInterrupt):
            _host(opts.inbound, opts.outbound)
        return 0
    if not opts.command:
        parser.error("the pod side needs the container's command after --")
    return _pod(opts.directory, opts.inbound, opts.outbound, opts.command)


if __name__ == "__main__":
    sys.exit(main())
