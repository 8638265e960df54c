"""The edge under the real protocol: a body the server has already parsed whole is read without
arming a deadline, a body still arriving keeps its deadline (408) and its cap (413), and the
header deadline, armed only when a chunk leaves a head unfinished, still catches every head that
does not finish.

A uvicorn server with the runtime's bounded protocol on 127.0.0.1:0, a raw-socket client, and an
app that reads the body the way every route does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request
from uvicorn import Config, Server

from helm_runbook.runtime.edge import BODY_RECEIVED, bounded_protocol, read_body
from helm_runbook.runtime.limits import BodyBudget
from helm_runbook.runtime.problems import ProblemError

BODY_TIMEOUT_S = 1.0
HEADER_TIMEOUT_S = 0.5
LIMIT = 64


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it saw: whether the body was flagged whole, and the body."""
    request = Request(scope, receive)
    flagged = bool(scope.get(BODY_RECEIVED))
    held = [0]
    try:
        body = await read_body(request, limit=LIMIT, timeout_s=BODY_TIMEOUT_S,
                               budget=BodyBudget(1 << 20), held=held)  # fmt: skip
        status, answer = 200, {"flagged": flagged, "body": body.decode()}
    except ProblemError as exc:
        status, answer = exc.status, {"flagged": flagged, "detail": exc.detail}
    content = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(content)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": content})


@asynccontextmanager
async def _server() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    protocol = bounded_protocol(max_header_bytes=8 << 10, header_timeout_s=HEADER_TIMEOUT_S)
    config = Config(_app, http=protocol, ws="none", log_config=None, access_log=False,
                    lifespan="off")  # fmt: skip
    server = Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):  # bounded: 5 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def _head(length: int) -> bytes:
    return f"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode()


async def _exchange(port: int, *parts: tuple[bytes, float]) -> tuple[int, dict[str, Any]]:
    """Send each part after its pause (seconds); the status and JSON of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data, pause in parts:
            await asyncio.sleep(pause)
            if writer.is_closing():
                break
            writer.write(data)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 5)
        return int(head.split()[1]), json.loads(body)
    finally:
        writer.close()


def test_a_body_sent_with_its_headers_is_flagged_whole_and_read() -> None:
    async def run() -> None:
        async with _server() as port:
            status, seen = await _exchange(port, (_head(5) + b"hello", 0))
            assert (status, seen) == (200, {"flagged": True, "body": "hello"})

    asyncio.run(run())


def test_a_body_still_arriving_keeps_its_deadline_and_its_cap() -> None:
    async def run() -> None:
        async with _server() as port:
            # the rest comes in time: not flagged when the route started reading, read whole
            status, seen = await _exchange(port, (_head(10) + b"hello", 0), (b"world", 0.05))
            assert (status, seen) == (200, {"flagged": False, "body": "helloworld"})
            # the rest never comes: 408 after the body deadline
            status, seen = await _exchange(
                port, (_head(10) + b"hello", 0), (b"", BODY_TIMEOUT_S + 0.5)
            )
            assert status == 408 and not seen["flagged"]
            # an undeclared (chunked) body over the cap: 413, whole or not
            chunked = (b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"50\r\n" + b"x" * 80 + b"\r\n0\r\n\r\n")  # fmt: skip
            status, seen = await _exchange(port, (chunked, 0))
            assert status == 413 and seen["flagged"]

    asyncio.run(run())


async def _statuses_until_closed(port: int, *parts: tuple[bytes, float]) -> list[int]:
    """Send each part after its pause (stopping once the server closes) while reading; the
    statuses of every answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for data, pause in parts:
                await asyncio.sleep(pause)
                if writer.is_closing() or reader.at_eof():
                    return
                writer.write(data)
                await writer.drain()

    sender = asyncio.create_task(send())
    try:
        received = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    finally:
        sender.cancel()
        writer.close()
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def test_a_head_left_unfinished_after_a_whole_request_still_times_out() -> None:
    whole = _head(5) + b"hello"
    half = b"POST /x HTTP/1.1\r\nHost: t\r\n"

    async def run() -> None:
        async with _server() as port:
            # the next head's first half in the same chunk as a whole request
            assert await _statuses_until_closed(port, (whole + half, 0)) == [200, 408]
            # ... or in a chunk of its own
            assert await _statuses_until_closed(port, (whole, 0), (half, 0.05)) == [200, 408]
            # stray CRLFs that never start a request: closed once the deadline passes
            crlfs = [(b"\r\n", 0.1)] * int(4 * HEADER_TIMEOUT_S / 0.1)
            assert await _statuses_until_closed(port, (whole, 0), *crlfs) == [200, 408]

    asyncio.run(run())
