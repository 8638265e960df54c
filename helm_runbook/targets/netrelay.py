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
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

MAX_CONNECTIONS = 256
IDLE_TIMEOUT_S = 3600.0
CONNECT_TIMEOUT_S = 5.0
CHUNK = 1 << 16
Connector = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction until EOF (passed on as a half-close), an error or the idle timeout."""
    try:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the read completes, and a relay that missed it never stops.
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, TimeoutError):
        writer.close()


def _relay(connect: Connector, slots: asyncio.Semaphore) -> Handler:
    """A connection handler that splices each accepted connection onto ``connect()``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.close()  # over the connection bound: refused, as a full backlog would be
            return
        async with slots:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    far_reader, far_writer = await connect()
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
    return lambda: asyncio.open_connection("127.0.0.1", port)


def _unix(path: str) -> Connector:
    return lambda: asyncio.open_unix_connection(path)


async def _host(inbound: list[int], outbound: list[int]) -> None:
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    for port in inbound:
        await asyncio.start_server(_relay(_unix(f"in-{port}.sock"), slots), "127.0.0.1", port)
    for port in outbound:
        await asyncio.start_unix_server(_relay(_tcp(port), slots), f"out-{port}.sock")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


async def _pod(directory: Path, inbound: list[int], outbound: list[int], command: list[str]) -> int:
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    for port in inbound:
        await asyncio.start_unix_server(
            _relay(_tcp(port), slots), str(directory / f"in-{port}.sock")
        )
    for port in outbound:
        try:
            await asyncio.start_server(
                _relay(_unix(str(directory / f"out-{port}.sock")), slots), "127.0.0.1", port
            )
        except OSError as exc:  # e.g. a port below 1024 for the pod's unprivileged user
            # The container still starts; a connection to that port is refused, as it would
            # be for an upstream that is down, and the runtime reports it when it is used.
            print(f"netrelay: no egress to 127.0.0.1:{port} inside the pod ({exc.strerror})",
                  file=sys.stderr, flush=True)  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*command)
    # A pod deletion signals every process of the pod, the container included: passing it on
    # would be a second SIGTERM (uvicorn's "force exit"). So the relay waits for the container.
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: None)
    code = await proc.wait()
    return code if code >= 0 else 128 - code


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
            asyncio.run(_host(opts.inbound, opts.outbound))
        return 0
    if not opts.command:
        parser.error("the pod side needs the container's command after --")
    # Not asyncio.run: it cancels every open connection and waits for each to finish, and one
    # that never does (a lost cancellation, see _copy) would keep a finished pod running.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            _pod(opts.directory, opts.inbound, opts.outbound, opts.command)
        )
    finally:
        loop.close()  # open connections are dropped, not awaited: the process ends next


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown either: the pod ends the moment its container does, as a kubelet
    # ends a pod's other processes, whatever connection is still open.
    os._exit(status)
