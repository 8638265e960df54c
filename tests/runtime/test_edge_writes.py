"""The HTTP edge sends each answer's head with its first body bytes, in one send."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from helm_runbook.runtime.edge import _HeadWithBody


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def wrapped() -> tuple[RecordingTransport, Any]:
    transport = RecordingTransport()
    return transport, _HeadWithBody(cast(asyncio.Transport, transport))


def test_the_head_leaves_with_the_first_body_bytes_and_later_chunks_at_once() -> None:
    transport, cycle_side = wrapped()
    cycle_side.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
    assert transport.writes == []
    cycle_side.write(b"HTTP/1.1 2")  # body bytes that merely look like a head are never held
    cycle_side.write(b"HTTP/1.1 2")
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nHTTP/1.1 2",
        b"HTTP/1.1 2",
    ]
    assert cycle_side.is_closing() is False  # everything else is the transport's own


def test_100_continue_is_not_held_and_a_close_sends_a_held_head() -> None:
    transport, cycle_side = wrapped()
    cycle_side.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle_side.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    cycle_side.close()
    assert transport.writes[-1] == b"HTTP/1.1 204 No Content\r\n\r\n" and transport.closed
