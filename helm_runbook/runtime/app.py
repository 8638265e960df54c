"""ASGI applications for the API port and the health port, built from the route table.

Domain errors become HTTP errors here, in one place: ``ProblemError`` → its status,
``StoreUnavailable`` → 503 fail-closed, anything else → 500 with upstream's generic detail
(the cause goes to the log, never to the client).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helm_runbook.runtime.auth import Identity, authorize
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.edge import read_body
from helm_runbook.runtime.limits import CONCURRENCY_LIMIT_EXCEEDED
from helm_runbook.runtime.log import log
from helm_runbook.runtime.problems import INTERNAL_DETAIL, ProblemError, problem
from helm_runbook.runtime.routes import API_ROUTES, HEALTH_ROUTES, RouteSpec
from helm_runbook.runtime.store.base import StoreUnavailable

if TYPE_CHECKING:  # prometheus_client loads only when metrics are enabled
    from helm_runbook.runtime.metrics import Metrics

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_METHOD_SET = frozenset(_ALL_METHODS)
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", b"default-src 'self'"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Security headers and ``X-Request-ID`` on every API response (docs/upstream-contract.md#ports); as the
    outermost layer, also where an unhandled error ends. Starlette re-raises it after the 500
    is sent so that servers can log it, but uvicorn would then print the traceback (the
    exception's message may quote the request body) and drop the keep-alive connection. The
    500 handler has already logged the type and place; nothing more leaves this layer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value[:128]
                break
        if not request_id:
            # uuid4().hex's shape and randomness, without building a UUID object
            request_id = os.urandom(16).hex().encode()

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    *_SECURITY_HEADERS,
                    (b"x-request-id", request_id),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if not started:
                log("unhandled error", level="ERROR", path=scope.get("path", ""),
                    error=type(exc).__name__)  # fmt: skip
                response = problem(500, INTERNAL_DETAIL, instance=scope.get("path", ""))
                await response(scope, receive, send_with_headers)


def _client_key(request: Request) -> str:
    return "addr:" + (request.client.host if request.client else "unknown")


async def _serve_limited(spec: RouteSpec, runtime: Runtime, request: Request) -> Response:
    """Auth, then the rate limit on who authenticated, then the body under the route's cap, and
    only then a concurrency slot: a slow or refused sender never holds one."""
    settings = runtime.settings
    limiter = runtime.limiter if spec.limited else None
    try:
        identity = authorize(
            request,
            spec.auth,
            admin_key=settings.admin_api_key,
            service_key=settings.service_api_key,
            tenant_id=settings.tenant_id,
            principal_id=settings.principal_id,
        )
    except ProblemError:
        # A failed login spends only its address's bucket, never the principal's it claimed.
        if limiter is not None and (reason := limiter.check(_client_key(request))) is not None:
            return _limited(request, reason)
        raise
    if limiter is not None:
        actor = (
            f"principal:{identity.tenant_id}/{identity.principal_id}"
            if identity.principal_id
            else _client_key(request)
        )
        if (reason := limiter.check(actor)) is not None:
            return _limited(request, reason)
    held = [0]  # body bytes reserved from the process's budget, released when the answer is made
    try:
        await read_body(request, limit=spec.max_body, timeout_s=settings.limits.body_timeout_s,
                        budget=runtime.body_budget, held=held)  # fmt: skip
        gate = runtime.gate if spec.limited else None
        if gate is not None and not gate.enter():
            return problem(
                503, CONCURRENCY_LIMIT_EXCEEDED, instance=request.url.path,
                headers={"Retry-After": "1", "X-Helm-Limiter-Reason": CONCURRENCY_LIMIT_EXCEEDED},
            )  # fmt: skip
        try:
            return await spec.handler(request, identity)
        finally:
            if gate is not None:
                gate.exit()
    finally:
        runtime.body_budget.release(held[0])


def _limited(request: Request, reason: str) -> Response:
    return problem(
        429, reason, instance=request.url.path,
        headers={"Retry-After": "5", "X-Helm-Limiter-Reason": reason},
    )  # fmt: skip


def _endpoint(spec: RouteSpec, runtime: Runtime | None) -> Any:
    allowed = set(spec.methods)

    async def endpoint(request: Request) -> Response:
        if "*" not in allowed and request.method not in allowed:
            return problem(
                405,
                f"{request.method} is not allowed on {spec.path}; use {', '.join(spec.methods)}",
                instance=request.url.path,
                headers={"Allow": ", ".join(spec.methods)},
            )
        if runtime is None:
            return await spec.handler(request, Identity())
        try:
            return await _serve_limited(spec, runtime, request)
        except ProblemError as exc:
            return problem(exc.status, exc.detail, instance=request.url.path, headers=exc.headers)
        except HTTPException as exc:  # Starlette's own refusals, e.g. a multipart over its limits
            return problem(exc.status_code, exc.detail, instance=request.url.path)
        except StoreUnavailable as exc:
            log("receipt store unavailable", level="ERROR", path=request.url.path, error=str(exc))
            return problem(
                503,
                f"Receipt store unavailable: {exc}. No receipt was written; retry when storage recovers.",
                instance=request.url.path,
                headers={"Retry-After": "1"},
            )

    endpoint.__name__ = spec.operation_id
    return endpoint


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("404 page not found\n", status_code=404)


async def _internal(request: Request, exc: Exception) -> Response:
    # The exception's type and where it was raised, never its message or repr: those can hold
    # the request body (a UnicodeEncodeError's repr carries the whole string it failed on).
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}" if frame else ""
    log("unhandled error", level="ERROR", path=request.url.path, error=type(exc).__name__,
        where=where)  # fmt: skip
    return problem(500, INTERNAL_DETAIL, instance=request.url.path)


class ExactRoutes:
    """A request for a route without path parameters goes straight to its endpoint; anything
    else (``{id}`` routes, unknown paths and their 404, trailing-slash redirects, methods outside
    ``_ALL_METHODS``) goes through the Starlette application as before. Same answers, less
    work: Starlette's two exception layers, its router's scan of one regular expression per
    route and its wrappers around ``send`` were a third of the server's CPU per ``GET /version``
    (benchmarks/hot_path.py). An error escaping the endpoint gets the same 500 handler and is
    re-raised to ``SecurityHeaders``, as Starlette's ``ServerErrorMiddleware`` does."""

    def __init__(self, app: Starlette, endpoints: dict[str, Callable[[Request], Any]]) -> None:
        self.app = app
        self.endpoints = endpoints

    @property
    def routes(self) -> list[BaseRoute]:
        """The routes served: the Starlette application's (the direct ones among them)."""
        return self.app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.endpoints.get(scope["path"])
            if scope["type"] == "http"
            and scope["method"] in _METHOD_SET
            and not scope.get("root_path")
            else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Starlette sets: handlers find ``app.state`` through it
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            await (await _internal(request, exc))(scope, receive, send)
            raise
        await response(scope, receive, send)


def create_app(runtime: Runtime) -> ASGIApp:
    """The API-port application (8080): routes of ``API_ROUTES`` behind the security headers."""
    endpoints = {s.path: _endpoint(s, runtime) for s in API_ROUTES}
    app = Starlette(
        routes=[
            Route(path, endpoint, methods=_ALL_METHODS) for path, endpoint in endpoints.items()
        ],
        exception_handlers={404: _not_found, 500: _internal},
    )
    app.state.runtime = runtime
    app.state.readiness = runtime.store.health
    exact = {path: endpoint for path, endpoint in endpoints.items() if "{" not in path}
    return SecurityHeaders(ExactRoutes(app, exact))


def _metrics_route(metrics: Metrics) -> Route:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = metrics.registry

    async def scrape(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", scrape, methods=["GET", "HEAD"])


def create_health_app(
    metrics: Metrics | None = None, readiness: Callable[[], str] | None = None
) -> ASGIApp:
    """The health-port application (8081): ``/health`` and ``/healthz`` answer ``OK`` (503 while
    ``readiness`` names a fault); no middleware. ``/metrics`` is added here when the metrics port
    equals the health port."""
    routes = [Route(s.path, _endpoint(s, None), methods=_ALL_METHODS) for s in HEALTH_ROUTES]
    if metrics is not None:
        routes.append(_metrics_route(metrics))
    app = Starlette(routes=routes, exception_handlers={404: _not_found})
    app.state.readiness = readiness
    return app


def create_metrics_app(metrics: Metrics) -> ASGIApp:
    """The metrics-port application (9090): ``GET /metrics`` in Prometheus text format."""
    return Starlette(routes=[_metrics_route(metrics)], exception_handlers={404: _not_found})
