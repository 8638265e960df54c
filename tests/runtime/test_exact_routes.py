"""The API app's direct dispatch (``app.ExactRoutes``) answers exactly as Starlette's stack does,
and a request to a route without path parameters never enters that stack.

The reference is the same Starlette application without the direct dispatch in front, behind
the same security headers: every method on every route, odd paths, bodies on routes that take
none and an unhandled error must give the same status, body and headers (the request id apart).
"""

from __future__ import annotations

import asyncio
import sys
from types import FrameType
from typing import Any

import pytest
from starlette.testclient import TestClient

from helm_runbook.runtime.app import ExactRoutes, SecurityHeaders, create_app
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.routes import API_ROUTES
from tests.conftest import ADMIN_KEY, TENANT_HEADERS

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
ODD_PATHS = ("/api/v1/evaluate/", "/version/", "/api/v1/nothing", "/", "/api/v1/receipts/r1")


def _clients(runtime: Runtime) -> tuple[TestClient, TestClient]:
    app = create_app(runtime)
    assert isinstance(app, SecurityHeaders) and isinstance(app.app, ExactRoutes)
    reference = SecurityHeaders(app.app.app)  # the Starlette application alone
    return (
        TestClient(app, raise_server_exceptions=False, follow_redirects=False),
        TestClient(reference, raise_server_exceptions=False, follow_redirects=False),
    )


def _seen(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")
    return response.status_code, response.content, headers


def _same(direct: TestClient, reference: TestClient, method: str, path: str, **kw: Any) -> None:
    got, want = direct.request(method, path, **kw), reference.request(method, path, **kw)
    assert _seen(got) == _seen(want), f"{method} {path}"


def test_every_method_on_every_route_answers_as_starlette_does(runtime: Runtime) -> None:
    direct, reference = _clients(runtime)
    paths = [s.path for s in API_ROUTES if "{" not in s.path] + list(ODD_PATHS)
    for path in paths:
        for method in METHODS:
            _same(direct, reference, method, path)  # no credentials: public answers and 401s


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("GET", "/version", {"content": b"12345"}),  # a body on a route that takes none: 413
        ("GET", "/version", {"headers": {"Content-Length": "0"}}),
        ("GET", "/version", {"headers": {"Content-Length": "x1"}}),
        ("POST", "/api/v1/evaluate", {"headers": TENANT_HEADERS, "content": b"[1]"}),
        ("POST", "/api/v1/evaluate", {"headers": TENANT_HEADERS, "content": b"{"}),
        ("POST", "/api/v1/evaluate", {"headers": TENANT_HEADERS}),
        ("POST", "/api/v1/evaluate", {"headers": {"Authorization": "Bearer wrong"}}),
        ("POST", "/api/v1/evaluate", {"headers": TENANT_HEADERS, "content": b"x" * (1 << 20 | 1)}),
        ("GET", "/api/v1/receipts?limit=zero", {"headers": TENANT_HEADERS}),
        ("POST", "/v1/chat/completions", {"json": {"model": "m", "messages": []}}),
        ("POST", "/internal/policy/reconcile", {"headers": {"Authorization": f"Bearer {ADMIN_KEY}"}}),
    ],
)  # fmt: skip
def test_refusals_and_bodies_answer_as_starlette_does(
    runtime: Runtime, method: str, path: str, kw: dict[str, Any]
) -> None:
    direct, reference = _clients(runtime)
    _same(direct, reference, method, path, **kw)


def test_a_chunked_body_on_a_route_that_takes_none_is_still_read_and_refused(
    runtime: Runtime,
) -> None:
    direct, _ = _clients(runtime)

    def chunks() -> Any:
        yield b"12345"

    response = direct.request("GET", "/version", content=chunks())  # Transfer-Encoding: chunked
    assert response.status_code == 413


def test_an_unhandled_error_is_the_same_500(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(**kwargs: object) -> None:
        raise LookupError("boom")

    monkeypatch.setattr(runtime.kernel, "evaluate_async", explode)
    direct, reference = _clients(runtime)
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s1", "args": {}}
    _same(direct, reference, "POST", "/api/v1/evaluate", headers=TENANT_HEADERS, json=body)
    assert direct.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).status_code == 500


def _files_entered(
    app: Any, scope: dict[str, Any], body: bytes = b"", status: int = 200
) -> set[str]:
    """The source files of every Python function one ASGI call runs."""
    entered: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            entered.add(frame.f_code.co_filename)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == status, message

    async def call() -> None:
        sys.setprofile(profile)
        try:
            await app(scope, receive, send)
        finally:
            sys.setprofile(None)

    asyncio.run(call())
    return entered


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000), "method": method,
            "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers}  # fmt: skip


def _under(files: set[str], *parts: str) -> list[str]:
    return sorted(f for f in files if any(p in f.replace("\\", "/") for p in parts))


STARLETTE_STACK = (
    "starlette/routing.py",
    "starlette/middleware/",
    "starlette/_exception_handler.py",
)


def test_an_exact_route_never_enters_starlettes_router_or_middleware(runtime: Runtime) -> None:
    app = create_app(runtime)
    entered = _files_entered(app, _scope("GET", "/version", [(b"host", b"x")]))
    assert not _under(entered, *STARLETTE_STACK)
    body = b'{"tool": "file_read", "effect_level": "E1", "session_id": "s1", "args": {}}'
    headers = [(k.lower().encode(), v.encode()) for k, v in TENANT_HEADERS.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    entered = _files_entered(app, _scope("POST", "/api/v1/evaluate", headers), body)
    assert not _under(entered, *STARLETTE_STACK)
    # a path with parameters still goes through the router
    entered = _files_entered(
        app, _scope("GET", "/api/v1/receipts/r", [(b"host", b"x")]), status=401
    )
    assert _under(entered, "starlette/routing.py")


def test_a_request_without_a_body_arms_no_body_deadline(runtime: Runtime) -> None:
    """No Content-Length and no Transfer-Encoding: there is no body to wait for (RFC 9112 §6.3)."""
    entered = _files_entered(create_app(runtime), _scope("GET", "/version", [(b"host", b"x")]))
    assert not _under(entered, "asyncio/timeouts.py")
