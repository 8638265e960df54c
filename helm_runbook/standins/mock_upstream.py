"""A small OpenAI-compatible stand-in upstream for local runs and tests.

``helm-runbook mock-upstream --port 9999`` serves ``POST /v1/chat/completions`` (plain and
``stream: true`` SSE) and ``GET /v1/models``. Replies are deterministic (they echo the last user
message), so runbooks and tests can assert on them. Latency and failures can be injected:
``--latency-ms`` for every reply, ``--fail-every N`` to answer every Nth request with a 500, and
per request the model name ``mock-status-503`` (or the header ``X-Mock-Status: 503``, which a
governed proxy does not forward) forces that status.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from helm_runbook.standins.background import BackgroundServer


@dataclass
class MockUpstreamConfig:
    latency_ms: float = 0.0
    fail_every: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)  # what reached us, for tests


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "mock_upstream_error", "code": str(status)}},
        status_code=status,
    )


def _invalid(body: Any) -> str | None:
    """The OpenAI API's 400s for a malformed chat request (the stand-in must not crash on them)."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages must be an array of message objects"
    if "tools" in body and not isinstance(body["tools"], list):
        return "tools must be an array"
    return None


def _reply_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    last = next(
        (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {}
    )
    content = last.get("content", "") if isinstance(last, dict) else ""
    return f"echo: {content}" if isinstance(content, str) else "echo"


def create_mock_upstream(config: MockUpstreamConfig | None = None) -> Starlette:
    """The ASGI app; ``config.requests`` records every chat request (body and headers)."""
    cfg = config or MockUpstreamConfig()

    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "request body is not JSON")
        cfg.requests.append({"body": body, "headers": dict(request.headers)})
        if problem := _invalid(body):  # what the real API answers with 400
            return _error(400, problem)
        if cfg.latency_ms:
            await asyncio.sleep(cfg.latency_ms / 1000)
        model_status = re.fullmatch(r"mock-status-(\d{3})", str(body.get("model", "")))
        forced = model_status.group(1) if model_status else request.headers.get("x-mock-status")
        if forced and forced.isdigit() and int(forced) != 200:
            return _error(int(forced), f"forced status {forced}")
        if cfg.fail_every and len(cfg.requests) % cfg.fail_every == 0:
            return _error(500, f"injected failure (every {cfg.fail_every} requests)")
        model = str(body.get("model", "mock-model"))
        text = _reply_text(body)
        ident = "chatcmpl-" + hashlib.sha256(raw).hexdigest()[:24]
        prompt_tokens = sum(
            len(str(m.get("content", "")).split())
            for m in body.get("messages", [])
            if isinstance(m, dict)
        )
        completion_tokens = len(text.split())
        if body.get("stream"):
            return StreamingResponse(_stream(ident, model, text), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "mock-model", "object": "model", "owned_by": "helm-runbook"}],
            }
        )

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)]
    )


async def _stream(ident: str, model: str, text: str) -> AsyncIterator[bytes]:
    """OpenAI's SSE framing: a role chunk, one chunk per word, a finish chunk, then [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": ident, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip
        return f"data: {json.dumps(data)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    words = text.split(" ")
    for n, word in enumerate(words):
        yield chunk({"content": word if n == 0 else " " + word})
        await asyncio.sleep(0)
    yield chunk({}, "stop")
    yield b"data: [DONE]\n\n"


def serve(
    port: int, host: str = "127.0.0.1", *, latency_ms: float = 0.0, fail_every: int = 0
) -> None:
    from helm_runbook.standins.background import listen, serve_forever

    sock = listen(host, port)
    app = create_mock_upstream(MockUpstreamConfig(latency_ms=latency_ms, fail_every=fail_every))
    serve_forever(app, sock, "stand-in upstream (OpenAI-compatible)", base_path="/v1")


class MockUpstreamServer(BackgroundServer):
    """The stand-in upstream on 127.0.0.1 in a background thread (tests, runbooks).

    ``with MockUpstreamServer() as upstream: upstream.url`` → ``http://127.0.0.1:<port>/v1``.
    """

    def __init__(self, config: MockUpstreamConfig | None = None, *, port: int = 0) -> None:
        self.config = config or MockUpstreamConfig()
        super().__init__(create_mock_upstream(self.config), port=port)

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def __enter__(self) -> MockUpstreamServer:
        super().__enter__()
        return self
