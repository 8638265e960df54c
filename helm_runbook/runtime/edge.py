"""Bounded reading at the HTTP edge, in one place: header bytes and time, body bytes and time.

uvicorn's httptools protocol has no cap on header size (httptools concatenates a header value
until it ends, so a 100 MB header is held in memory and then served) and no timer before the
first request or while headers trickle in. ``bounded_protocol`` adds both; every server of the
runtime (API, health, metrics) uses it. ``read_body`` streams a request body under a byte cap
and a deadline, chunked bodies included, so nothing larger than the route allows is ever held,
and reserves it from the process's body budget first, so all bodies together stay bounded too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from helm_runbook.runtime.limits import BODY_BUDGET_EXHAUSTED, BodyBudget
from helm_runbook.runtime.problems import ProblemError

# Set in a request's scope by the server's protocol once the request's last body byte has been
# parsed (a key no client can send: headers live under "headers").
BODY_RECEIVED = "helm.body_received"

# Answering a refused request while the client is still sending: close after it, do not drain.
_CLOSE = {"Connection": "close"}


def _raw_response(status: bytes, reason: str) -> bytes:
    body = reason.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class _BoundedHttpTools(HttpToolsProtocol):
    """httptools with a cap on request-line + header bytes and a deadline to finish them."""

    max_header_bytes = 64 << 10
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._parser_events = 0
        self._head_started = False  # a request's first byte parsed, its head not yet complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that sends nothing must not sit here forever

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        done_before = self._parser_events
        super().data_received(data)
        if not self._in_headers:
            return
        header_bytes_only = self._parser_events == done_before
        if header_bytes_only:
            # neither a header block nor a message ended in this chunk: it is all header bytes
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._refuse(b"431 Request Header Fields Too Large",
                             f"Request line and headers exceed {self.max_header_bytes} bytes")  # fmt: skip
        # The deadline runs while a header block is unfinished once this chunk is parsed: after
        # bytes that ended nothing (a partial head, stray CRLFs), or after the start of the next
        # request's head. A chunk that ended its request (the common case: a whole request in
        # one read) leaves none to arm and cancel.
        if (
            self._header_timer is None
            and (header_bytes_only or self._head_started)
            and not self.transport.is_closing()
        ):
            self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._head_started = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._head_started = False
        self._header_bytes = 0
        self._parser_events += 1
        self._cancel_header_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and not cycle.more_body:
            # The whole body is in the cycle's buffer: ``read_body`` needs no deadline for it.
            cycle.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]
        self._parser_events += 1
        self._header_bytes = 0
        self._in_headers = True  # the next bytes on this connection start a new header block

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self._refuse(b"408 Request Timeout",
                         f"Request headers not received within {self.header_timeout_s:g}s")  # fmt: skip

    def _refuse(self, status: bytes, reason: str) -> None:
        """Answer and close; with an earlier (pipelined) response still being written, just
        close, so the two never interleave on the wire."""
        self._cancel_header_timer()
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_raw_response(status, reason))
        self.transport.close()


class _HeadWithBody:
    """The connection as one response cycle writes to it: the response head is held until the
    first body bytes and leaves with them in one send (uvicorn writes head and body apart: two
    system calls and two wake-ups of the client for every answer). Any other write (a
    ``100 Continue``), a close and every other attribute pass straight through."""

    __slots__ = ("_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif not self._started and data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":
            self._started = True  # the head: uvicorn's first write that is not a 1xx
            self._head = data
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def bounded_protocol(*, max_header_bytes: int, header_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these bounds."""
    return type(
        "BoundedHttpTools",
        (_BoundedHttpTools,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s},
    )


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ProblemError(400, "Content-Length must be a decimal byte count", headers=_CLOSE)
    return int(raw)


async def read_body(
    request: Request, *, limit: int, timeout_s: float, budget: BodyBudget, held: list[int]
) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes (declared or not),
    with 408 when it has not arrived within ``timeout_s``, and with 503 when the process's
    ``budget`` of buffered body bytes cannot take it: a declared length that does not fit is
    refused before any byte is read, and every chunk is reserved before it is kept (so a slow
    sender holds only what it has sent, never what it announced). What is reserved is added to
    ``held``; the caller releases it once the answer is sent. Later reads of the request
    (``body()``, ``form()``, ``stream()``) see these bytes."""
    declared = _declared_length(request)
    if not declared and "transfer-encoding" not in request.headers:
        # No Content-Length (or 0) and no Transfer-Encoding: HTTP/1.1 says there is no body
        # (RFC 9112 §6.3), and the parser treats any following bytes as the next request.
        # Nothing to wait for, so no deadline to arm.
        request._body = b""
        return b""
    if declared is not None and declared > limit:
        raise ProblemError(413, f"Request body exceeds {limit} bytes", headers=_CLOSE)
    if declared and not budget.fits(declared):
        _refuse_budget(budget)
    chunks: list[bytes] = []
    try:
        if request.scope.get(BODY_RECEIVED):  # all buffered: reading it cannot wait
            await _collect(request, limit, budget, held, chunks)
        else:
            async with asyncio.timeout(timeout_s):
                await _collect(request, limit, budget, held, chunks)
    except TimeoutError:
        raise ProblemError(
            408, f"Request body not received within {timeout_s:g}s", headers=_CLOSE
        ) from None
    except ClientDisconnect:
        raise ProblemError(400, "Client disconnected before the body was complete") from None
    body = b"".join(chunks)
    request._body = body  # Starlette's cache: body(), json(), form() and stream() replay it
    return body


async def _collect(
    request: Request, limit: int, budget: BodyBudget, held: list[int], chunks: list[bytes]
) -> None:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"Request body exceeds {limit} bytes", headers=_CLOSE)
        if size > held[0]:
            _reserve(budget, size - held[0], held)
        chunks.append(chunk)


def _reserve(budget: BodyBudget, size: int, held: list[int]) -> None:
    if not budget.reserve(size):
        _refuse_budget(budget)
    held[0] += size


def _refuse_budget(budget: BodyBudget) -> None:
    raise ProblemError(
        503,
        f"{BODY_BUDGET_EXHAUSTED}: the runtime is holding {budget.held} of its "
        f"{budget.total} request-body bytes (HELM_BODY_BUDGET_BYTES); retry",
        headers={**_CLOSE, "Retry-After": "1", "X-Helm-Limiter-Reason": BODY_BUDGET_EXHAUSTED},
    )
