"""The pod's network relays: bytes both ways with half-close, a bound on connections, and a
container's exit code passed through."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helm_runbook.targets import netrelay


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await reader.read())  # everything until the client's half-close
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_unix_socket_relays_to_a_tcp_port_and_passes_the_half_close(tmp_path: Path) -> None:
    server, port = await _echo_server()
    slots = asyncio.Semaphore(netrelay.MAX_CONNECTIONS)
    relay = await asyncio.start_unix_server(
        netrelay._relay(netrelay._tcp(port), slots), str(tmp_path / "in.sock")
    )
    async with server, relay:
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "in.sock"))
        payload = b"x" * 200_000  # more than one chunk
        writer.write(payload)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == payload
        await _close(writer)


async def test_connections_over_the_bound_are_closed_at_once(tmp_path: Path) -> None:
    server, port = await _echo_server()
    slots = asyncio.Semaphore(1)
    relay = await asyncio.start_unix_server(
        netrelay._relay(netrelay._tcp(port), slots), str(tmp_path / "in.sock")
    )
    async with server, relay:
        _, first = await asyncio.open_unix_connection(str(tmp_path / "in.sock"))
        await asyncio.sleep(0.1)  # the first one holds the only slot
        second_reader, second = await asyncio.open_unix_connection(str(tmp_path / "in.sock"))
        assert await asyncio.wait_for(second_reader.read(), 5) == b""
        await _close(second)
        first.write_eof()  # ends the relayed connection: echo answers, both ends close
        await _close(first)


async def test_an_unreachable_far_end_closes_the_connection(tmp_path: Path) -> None:
    slots = asyncio.Semaphore(1)
    missing = netrelay._unix(str(tmp_path / "absent.sock"))
    relay = await asyncio.start_server(netrelay._relay(missing, slots), "127.0.0.1", 0)
    async with relay:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", relay.sockets[0].getsockname()[1]
        )
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a client and let the relay's handlers finish before the loop does."""
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.05)


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (3, 3)])
def test_the_pod_side_exits_with_the_containers_code(
    tmp_path: Path, code: int, expected: int
) -> None:
    command = [sys.executable, "-c", f"raise SystemExit({code})"]
    assert (
        netrelay.main(["pod", str(tmp_path), "--in", "", "--out", "", "--", *command]) == expected
    )


def test_the_pod_side_needs_a_command(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        netrelay.main(["pod", str(tmp_path)])


def test_the_pod_side_ends_with_its_container_while_a_relayed_connection_stays_open(
    tmp_path: Path,
) -> None:
    """The container made a connection whose far end never answers nor closes, then exited: the
    pod side ends with it (a kubelet ends a pod's other processes), not at the idle timeout."""
    with socket.socket(socket.AF_UNIX) as far_end, socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()  # the pod side listens on it in this test's (shared) namespace
        far_end.bind(str(tmp_path / f"out-{port}.sock"))
        far_end.listen()  # never accepts: the relayed connection waits in its backlog
        container = (
            "import socket, time\n"
            f"for _ in range(100):\n"
            f"    try: s = socket.create_connection(('127.0.0.1', {port})); break\n"
            "    except OSError: time.sleep(0.05)\n"
            "s.sendall(b'hello'); time.sleep(0.2)\n"
        )
        argv = [sys.executable, str(Path(netrelay.__file__)), "pod", str(tmp_path),
                "--out", str(port), "--", sys.executable, "-c", container]  # fmt: skip
        pod_side = subprocess.Popen(argv)
        try:
            assert pod_side.wait(timeout=60) == 0  # bounded wait; the idle timeout is an hour
        finally:
            pod_side.kill()
