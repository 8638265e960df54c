"""The proxy's upstream client: connections reused and retired, every answer bounded."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from collections.abc import Awaitable, Callable
from typing import ClassVar

import pytest
from starlette.responses import Response

from helm_runbook.runtime.proxy import _with_upstream_headers
from helm_runbook.runtime.upstream import (
    MAX_RESPONSE_HEADER_BYTES,
    HttpxUpstream,
    UpstreamError,
    UpstreamPool,
    UpstreamTooLarge,
    basic_credentials,
    forward_proxy,
    open_upstream,
    redacted,
)
from helm_runbook.standins.mock_upstream import MockUpstreamServer

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
JSON = {"Content-Type": "application/json"}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawUpstream:
    """An upstream on 127.0.0.1 that answers with whatever bytes a test writes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


def answer(body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), headers, body)


async def post(pool: UpstreamPool, url: str, limit: int = 1 << 20) -> bytes:
    response = await pool.post(url, CHAT, JSON)
    try:
        return await response.read(limit)
    finally:
        await response.aclose()


async def test_sequential_calls_share_one_keep_alive_connection() -> None:
    with MockUpstreamServer() as upstream:
        url = upstream.url + "/chat/completions"
        pool = UpstreamPool(url, timeout_s=5)
        bodies = [await post(pool, url) for _ in range(5)]
        await pool.aclose()
    assert all(b'"echo: hi"' in body for body in bodies)
    assert pool.opened == 1
    sent = upstream.config.requests[-1]["headers"]
    assert sent["content-type"] == "application/json"
    assert sent["accept-encoding"] == "identity"  # answers come uncompressed when they can


async def test_a_connection_the_upstream_closed_or_that_idled_too_long_is_not_reused() -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(reader)
        w.write(answer(b"{}"))  # keep-alive by default, then closed anyway
        await w.drain()

    upstream = RawUpstream(one_answer_then_close)
    async with upstream as url:
        pool = UpstreamPool(url, timeout_s=5)
        for _ in range(3):
            assert await post(pool, url) == b"{}"
            await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        assert pool.opened == 3 and upstream.connections == 3

    with MockUpstreamServer() as mock:
        url = mock.url + "/chat/completions"
        expiring = UpstreamPool(url, timeout_s=5, idle_expiry_s=0.0)
        for _ in range(3):
            await post(expiring, url)
        await expiring.aclose()
    assert expiring.opened == 3


async def test_a_connection_that_sends_an_unasked_answer_is_not_reused() -> None:
    async def two_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(b"{}") + answer(b'{"smuggled": true}'))
            await writer.drain()

    upstream = RawUpstream(two_answers)
    async with upstream as url:
        pool = UpstreamPool(url, timeout_s=5)
        assert await post(pool, url) == b"{}"
        await asyncio.sleep(0.05)
        assert await post(pool, url) == b"{}"  # never the smuggled answer
    assert pool.opened == 2


async def test_an_answer_without_length_ends_with_the_connection_and_is_not_reused() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"a":')
        await writer.drain()
        writer.write(b" 1}")

    upstream = RawUpstream(until_close)
    async with upstream as url:
        pool = UpstreamPool(url, timeout_s=5)
        assert await post(pool, url) == b'{"a": 1}'
        assert await post(pool, url) == b'{"a": 1}'
    assert pool.opened == 2


async def test_response_headers_are_capped() -> None:
    async def header_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(MAX_RESPONSE_HEADER_BYTES // 1000 + 2):
            writer.write(b"x-flood: " + b"a" * 1000 + b"\r\n")
            await writer.drain()
        await asyncio.sleep(5)

    async with RawUpstream(header_flood) as url:
        pool = UpstreamPool(url, timeout_s=5)
        with pytest.raises(UpstreamError, match="headers exceed"):
            await pool.post(url, CHAT, JSON)


async def test_a_silent_upstream_is_an_error_after_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def stalls_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")
        await writer.drain()
        await asyncio.sleep(5)

    async with RawUpstream(silent) as url:
        pool = UpstreamPool(url, timeout_s=0.3)
        with pytest.raises(UpstreamError, match=r"no response headers within 0\.3s"):
            await pool.post(url, CHAT, JSON)
    async with RawUpstream(stalls_mid_body) as url:
        pool = UpstreamPool(url, timeout_s=0.3)
        with pytest.raises(UpstreamError, match=r"no body bytes within 0\.3s"):
            await post(pool, url)


async def test_a_free_connection_is_taken_at_once_and_a_busy_pool_waits_within_the_timeout() -> (
    None
):
    with MockUpstreamServer() as upstream:
        url = upstream.url + "/chat/completions"
        pool = UpstreamPool(url, timeout_s=0.3, max_connections=1)
        held = await pool.post(url, CHAT, JSON)  # the only slot, held until closed
        with pytest.raises(UpstreamError, match=r"no upstream connection free within 0\.3s"):
            await pool.post(url, CHAT, JSON)
        waiting = asyncio.create_task(post(pool, url))  # waits for the slot ...
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await held.read(1 << 20)
        await held.aclose()  # ... and gets it when the first answer is done
        assert b'"echo: hi"' in await asyncio.wait_for(waiting, 5)
        assert b'"echo: hi"' in await post(pool, url)  # free again: no wait
        await pool.aclose()


async def test_compressed_answers_are_decoded_under_the_cap() -> None:
    payload = b'{"choices": "' + b"a" * (1 << 20) + b'"}'
    encodings = {
        b"gzip": gzip.compress(payload),
        b"deflate": zlib.compress(payload),
        b"deflate ": zlib.compress(payload)[2:-4],  # raw deflate, as some servers send it
    }
    for name, encoded in encodings.items():

        async def compressed(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, encoded: bytes = encoded,
            name: bytes = name,
        ) -> None:  # fmt: skip
            while True:
                await read_request(reader)
                writer.write(answer(encoded, b"content-encoding: " + name.strip()))
                await writer.drain()

        async with RawUpstream(compressed) as url:
            pool = UpstreamPool(url, timeout_s=5)
            assert await post(pool, url, limit=2 << 20) == payload, name
            with pytest.raises(UpstreamTooLarge):
                await post(pool, url, limit=64 << 10)  # a bomb stops at the cap, not at its size


async def test_streamed_answers_arrive_in_the_pieces_sent() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)

    async with RawUpstream(chunked) as url:
        pool = UpstreamPool(url, timeout_s=5)
        response = await pool.post(url, CHAT, JSON)
        pieces = [piece async for piece in response.iter_chunks()]
        await response.aclose()
    assert pieces == [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]
    assert len(pool._idle) == 1  # read to its end: back in the pool


async def test_refusals_before_sending() -> None:
    for url in ("localhost:9999/v1", "ftp://127.0.0.1/v1", "http://127.0.0.1:99999/v1"):
        with pytest.raises(UpstreamError, match="HELM_UPSTREAM_URL must be http"):
            UpstreamPool(url, timeout_s=5)
    pool = UpstreamPool("http://127.0.0.1:1/v1", timeout_s=5)
    with pytest.raises(UpstreamError, match=r"cannot connect to upstream 127\.0\.0\.1:1"):
        await pool.post("http://127.0.0.1:1/v1/chat/completions", CHAT, JSON)
    with pytest.raises(UpstreamError, match="control character"):
        await pool.post(
            "http://127.0.0.1:1/v1/chat/completions", CHAT, {"Authorization": "a\r\nX-Evil: 1"}
        )


async def test_a_forward_proxy_from_the_environment_is_honoured_through_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert forward_proxy("https://api.openai.com/v1") == ""
    assert isinstance(await open_upstream("http://127.0.0.1:9/v1", 5), UpstreamPool)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert forward_proxy("https://api.openai.com/v1") == "http://proxy.internal:3128"
    client = await open_upstream("https://api.openai.com/v1", 5)
    assert isinstance(client, HttpxUpstream)
    await client.aclose()
    monkeypatch.setenv("NO_PROXY", "api.openai.com")
    assert forward_proxy("https://api.openai.com/v1") == ""


async def test_credentials_in_the_url_authenticate_every_call_and_never_reach_a_message() -> None:
    """``https://user:pass@host/v1`` sends Basic auth (over the caller's own header), as httpx
    and curl do; the password never appears in an error."""
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for _ in range(2):  # both calls, on one kept-alive connection
            seen.append(await read_request(reader))
            w.write(answer(b"{}"))
            await w.drain()

    async with RawUpstream(record) as url:
        with_credentials = url.replace("http://", "http://gw%40ops:s%3Acret@")
        pool = UpstreamPool(with_credentials, timeout_s=5)
        await post(pool, with_credentials)
        response = await pool.post(with_credentials, CHAT, {"authorization": "Bearer caller"})
        await response.aclose()
        await pool.aclose()
    expected = b"Authorization: Basic " + base64.b64encode(b"gw@ops:s:cret")
    assert all(expected in request for request in seen), seen
    assert not any(b"Bearer caller" in request for request in seen)
    assert basic_credentials("http://127.0.0.1/v1") is None
    with pytest.raises(UpstreamError) as refused:
        UpstreamPool("ftp://gw:s3cret@127.0.0.1/v1", timeout_s=5)
    assert "s3cret" not in str(refused.value) and "***@127.0.0.1" in str(refused.value)
    assert redacted("https://u:p@h:1/v1?q") == "https://***@h:1/v1?q"


def test_the_proxy_relays_each_upstream_header_but_none_that_speaks_for_the_boundary() -> None:
    class Answer:
        status_code = 200
        headers: ClassVar = [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("content-type", "text/x"),
                   ("x-helm-verdict", "ALLOW"), ("x-helm-receipt-id", "rcpt-forged"),
                   ("content-length", "99"), ("x-request-id", "up-1")]  # fmt: skip

    relayed = _with_upstream_headers(
        Response(b"{}", headers={"X-HELM-Verdict": "DENY"}),
        Answer(),  # type: ignore[arg-type]
    ).raw_headers
    assert relayed.count((b"set-cookie", b"a=1")) == relayed.count((b"set-cookie", b"b=2")) == 1
    assert (b"x-helm-verdict", b"DENY") in relayed and b"rcpt-forged" not in dict(relayed).values()
    assert dict(relayed)[b"content-length"] == b"2" and (b"x-request-id", b"up-1") in relayed
    assert dict(relayed)[b"content-type"] == b"text/x"
