"""The governed proxy's client for its upstream: keep-alive HTTP/1.1 on asyncio, parsed by httptools.

httpx cost the proxy about 0.7 ms per call on this project's 2-core reference machine (its
auth, cookie, redirect and event-hook layers, anyio cancel scopes, headers and body sent in two
writes): a third of what the proxy added to a call. This client does only what the proxy
needs, under the same bounds: one request written in one send, response headers capped at
``MAX_RESPONSE_HEADER_BYTES``, the body read under a byte cap or relayed chunk by chunk with
back-pressure, every wait (connect, a free connection, headers, each chunk) under the upstream
timeout, gzip/deflate answers decoded under the caller's cap, and connections kept alive and
reused (most recently used first) until they have idled ``IDLE_EXPIRY_S``.

A forward proxy named by the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, minus
``NO_PROXY``) is honoured as before by handing the upstream to httpx, which speaks to proxies
(``open_upstream`` decides).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import importlib
import re
import time
import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import unquote, urlsplit

import httptools

if TYPE_CHECKING:
    import ssl

    import httpx

MAX_RESPONSE_HEADER_BYTES = 64 << 10
IDLE_EXPIRY_S = 4.0  # below the 5 s keep-alive of uvicorn, Node and many others: no stale reuse
MAX_CONNECTIONS = 100  # as httpx's default pool; a request waits (within the timeout) for a slot
MAX_IDLE = 20
_READ_HIGH_WATER = 256 << 10  # unread body bytes held before the socket stops being read
_DECODE_STEP = 64 << 10
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def redacted(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: fit for a message or a log."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def basic_credentials(url: str) -> str | None:
    """The ``Authorization`` value for credentials in ``url`` (``https://user:pass@host/v1``),
    as httpx and curl send them; None when it has none."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


class UpstreamError(Exception):
    """The upstream could not be reached or answered badly; the message says how."""


class UpstreamTooLarge(UpstreamError):
    """A decoded answer passed the caller's byte cap."""


class UpstreamResponse(Protocol):
    status_code: int
    headers: list[tuple[str, str]]

    async def read(self, limit: int) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def forward_proxy(url: str) -> str:
    """The forward proxy the environment names for ``url`` ('' when none applies)."""
    import urllib.request  # about 20 ms of imports: only when the first proxied call comes

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all") or ""
    if proxy and parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return ""
    return proxy


async def open_upstream(url: str, timeout_s: float) -> Upstream:
    """The client for ``url``: this module's pool, or httpx when a forward proxy applies. httpx
    (about 0.15 s of imports), a TLS context and the proxy settings load in a worker thread,
    never on the loop that answers probes."""
    if await asyncio.to_thread(forward_proxy, url):
        httpx_module = await asyncio.to_thread(importlib.import_module, "httpx")
        return HttpxUpstream(httpx_module.AsyncClient(timeout=timeout_s))
    context = None
    if urlsplit(url).scheme == "https":
        context = await asyncio.to_thread(_tls_context)
    return UpstreamPool(url, timeout_s=timeout_s, tls=context)


def _tls_context() -> ssl.SSLContext:
    """The context httpx verifies with (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)."""
    import httpx

    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Decoder:
    """Content-Encoding gzip or deflate undone in steps of at most ``_DECODE_STEP`` bytes, so a
    small bomb never becomes one large buffer; identity passes through."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self._zlib: zlib._Decompress | None = None
        self._deflate = encoding == "deflate"
        self._decoded = False
        if encoding == "gzip" or encoding == "x-gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._deflate:
            self._zlib = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise UpstreamError(f"upstream answered with unsupported Content-Encoding {encoding!r}")

    def decode(self, data: bytes) -> list[bytes]:
        if self._zlib is None:
            return [data] if data else []
        out = []
        try:
            while data:
                piece = self._zlib.decompress(data, _DECODE_STEP)
                if piece:
                    out.append(piece)
                data = self._zlib.unconsumed_tail
            self._decoded = True
        except zlib.error as exc:
            if self._deflate and not self._decoded and not out:  # raw deflate, no zlib header
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._decoded = True
                return self.decode(data)
            raise UpstreamError(f"upstream answer is not valid {self._kind()}: {exc}") from None
        return out

    def _kind(self) -> str:
        return "deflate" if self._deflate else "gzip"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the ``on_*`` methods while it parses."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.idle = False  # in the pool: nothing may arrive until the next request is sent
        self.waiter: asyncio.Future[None] | None = None
        self.start()

    def start(self) -> None:
        """Ready for the next response on this connection."""
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the body's end is not the connection's
        self.complete = False
        self.keep_alive = False
        self.error: UpstreamError | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.discard = False  # a second answer to one request: dropped, the connection closed

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.idle:  # an answer nobody asked for: the connection cannot be trusted again
            self._fail(UpstreamError("upstream sent data on an idle connection"))
            return
        if not self.headers_done:
            self.header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed upstream response: {exc}"))
            return
        if self.discard:
            self.close()  # the answer already complete stays readable; the connection goes
        elif not self.headers_done and self.header_bytes > MAX_RESPONSE_HEADER_BYTES:
            self._fail(
                UpstreamError(f"upstream response headers exceed {MAX_RESPONSE_HEADER_BYTES} bytes")
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and not self.framed and self.error is None:
            self.complete = True  # a body delimited by the connection's end has ended
        elif not self.complete and self.error is None:
            where = "during its answer" if self.headers_done else "before answering"
            self.error = UpstreamError(f"upstream closed the connection {where}")
        self._wake()

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete:
            self.discard = True
        elif self.headers_done and self.status < 200:  # after a 1xx: the real answer starts
            self.start()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.discard:
            return
        lowered = name.lower()
        if lowered in (b"content-length", b"transfer-encoding"):
            self.framed = True
        self.headers.append((lowered.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.discard:
            return
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        if self.status >= 200:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.discard:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _READ_HIGH_WATER and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status >= 200 and not self.discard:
            self.complete = True
            self._wake()

    # the request side
    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout_s: float, what: str) -> None:
        """Until the parser has more for the reader (or the connection ends)."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self.waiter
        except TimeoutError:
            self.close()
            raise UpstreamError(f"upstream sent no {what} within {timeout_s:g}s") from None
        finally:
            self.waiter = None

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class PooledResponse:
    """An upstream answer whose headers have arrived; its body is read once, then ``aclose``."""

    def __init__(self, pool: UpstreamPool, conn: _Connection, timeout_s: float) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._timeout_s = timeout_s
        self.status_code = conn.status
        self.headers = conn.headers
        encoding = next((v for k, v in conn.headers if k == "content-encoding"), "")
        self._decoder = _Decoder(encoding)

    async def _raw_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        while True:
            if conn.chunks:
                yield conn.take()
                continue
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return
            await conn.wait(self._timeout_s, "body bytes")

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body, decoded, in the pieces the upstream sent (no buffering beyond one read)."""
        async for raw in self._raw_chunks():
            for piece in self._decoder.decode(raw):
                yield piece

    async def read(self, limit: int) -> bytes:
        """The whole decoded body; ``UpstreamTooLarge`` once it passes ``limit`` bytes."""
        return await read_capped(self.iter_chunks(), limit)

    async def aclose(self) -> None:
        """Hand the connection back when its answer was read to the end, else close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)


async def read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """A whole body from ``chunks``, refused with ``UpstreamTooLarge`` once it passes ``limit``
    bytes (both clients' ``read``: the cap is counted as pieces arrive, never after buffering)."""
    pieces: list[bytes] = []
    size = 0
    async for piece in chunks:
        size += len(piece)
        if size > limit:
            raise UpstreamTooLarge(f"upstream answer exceeds {limit} bytes")
        pieces.append(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class UpstreamPool:
    """Keep-alive connections to one origin (``scheme://host:port``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
        idle_expiry_s: float = IDLE_EXPIRY_S,
    ) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise UpstreamError(
                f"HELM_UPSTREAM_URL must be http(s)://host[:port][/path], not {redacted(url)[:200]!r}"
            )
        # Credentials in the operator's URL authenticate every call, over the caller's own header
        # (httpx, which this client replaced, did the same).
        self.authorization = basic_credentials(url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self.timeout_s = timeout_s
        self.tls = tls
        self.max_idle = max_idle
        self.idle_expiry_s = idle_expiry_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.opened = 0  # connections made so far (what reuse saves is visible in tests)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PooledResponse:
        """Send ``POST url`` with ``body`` (same origin as the pool) and wait for the answer's
        headers; the caller reads the body and then calls ``aclose`` on the answer."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {self.host_header}",
            "Accept: */*",
            "Accept-Encoding: identity",
            f"Content-Length: {len(body)}",
        ]
        for name, value in headers.items():
            if not _HEADER_VALUE.fullmatch(value):
                raise UpstreamError(f"header {name} holds a control character")
            if self.authorization is None or name.lower() != "authorization":
                lines.append(f"{name}: {value}")
        if self.authorization is not None:
            lines.append(f"Authorization: {self.authorization}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        if self._slots.locked():  # every connection busy: wait for one, within the timeout
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise UpstreamError(
                    f"no upstream connection free within {self.timeout_s:g}s"
                ) from None
        else:
            await self._slots.acquire()  # a free slot is taken at once: no deadline to arm
        conn: _Connection | None = None
        try:
            conn = await self._connection()
            conn.start()
            assert conn.transport is not None
            conn.transport.write(request)  # one send: request line, headers and body
            while not (conn.headers_done and conn.status >= 200):
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self.timeout_s, "response headers")
            return PooledResponse(self, conn, self.timeout_s)
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_expiry_s:
                conn.idle = False
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise UpstreamError(
                f"cannot connect to upstream {self.host}:{self.port} within {self.timeout_s:g}s"
            ) from None
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to upstream {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.opened += 1
        return conn

    def release(self, conn: _Connection) -> None:
        self._slots.release()
        if conn.reusable() and len(self._idle) < self.max_idle:
            conn.idle, conn.idle_since = True, time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = [(k.lower(), v) for k, v in response.headers.multi_items()]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        import httpx

        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream answer failed: {type(exc).__name__}: {exc}") from None

    async def read(self, limit: int) -> bytes:
        return await read_capped(self.iter_chunks(), limit)

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstream:
    """The upstream through a forward proxy from the environment, as httpx reaches it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> _HttpxResponse:
        import httpx

        request = self._client.build_request("POST", url, content=body, headers=headers)
        try:
            return _HttpxResponse(await self._client.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self._client.aclose()
