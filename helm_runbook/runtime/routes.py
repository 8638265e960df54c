"""The runtime's route table: path, methods, auth class and operation id (upstream's RuntimeRouteSpecs).

This table is the single source for the app's routing and for generated reference docs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from helm_runbook.runtime import handlers
from helm_runbook.runtime.auth import PUBLIC, TENANT_SCOPED, Identity

Handler = Callable[[Request, Identity], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    path: str
    methods: tuple[str, ...]
    auth: str
    operation_id: str
    handler: Handler
    summary: str


API_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "/health",
        ("GET", "HEAD"),
        PUBLIC,
        "health",
        handlers.plain_ok,
        "Plain OK; also on the API port (decision D1)",
    ),
    RouteSpec(
        "/healthz", ("GET", "HEAD"), PUBLIC, "healthCheck", handlers.healthz, "Health check (JSON)"
    ),
    RouteSpec(
        "/api/health",
        ("GET", "HEAD"),
        PUBLIC,
        "getPublicDemoHealth",
        handlers.api_health,
        "Health with build and version metadata",
    ),
    RouteSpec(
        "/version", ("GET", "HEAD"), PUBLIC, "getVersion", handlers.version, "Version information"
    ),
    RouteSpec(
        "/api/v1/version",
        ("GET", "HEAD"),
        PUBLIC,
        "getVersionV1",
        handlers.version,
        "Version information",
    ),
    RouteSpec(
        "/api/v1/evaluate",
        ("POST",),
        TENANT_SCOPED,
        "evaluateDecision",
        handlers.evaluate,
        "Evaluate a governed intent and emit a receipt",
    ),
    RouteSpec(
        "/api/v1/receipts",
        ("GET", "HEAD"),
        TENANT_SCOPED,
        "listReceipts",
        handlers.list_receipts,
        "List durable receipts, oldest first",
    ),
    RouteSpec(
        "/api/v1/receipts/{receipt_id}",
        ("GET", "HEAD"),
        TENANT_SCOPED,
        "getConsoleReceipt",
        handlers.get_receipt,
        "Get a receipt by ID",
    ),
    RouteSpec(
        "/api/v1/proofgraph/sessions",
        ("GET", "HEAD"),
        TENANT_SCOPED,
        "listSessions",
        handlers.proofgraph_sessions,
        "List ProofGraph sessions",
    ),
    RouteSpec(
        "/api/v1/proofgraph/sessions/{session_id}/receipts",
        ("GET", "HEAD"),
        TENANT_SCOPED,
        "getSessionReceipts",
        handlers.proofgraph_session_receipts,
        "Receipts of one session in chain order",
    ),
    RouteSpec(
        "/api/v1/proofgraph/receipts/{receipt_hash}",
        ("GET", "HEAD"),
        TENANT_SCOPED,
        "getReceipt",
        handlers.proofgraph_receipt,
        "Get a single receipt by chain hash",
    ),
)

# Health port (8081): no middleware, any method (contract 3.2).
HEALTH_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("/health", ("*",), PUBLIC, "healthPort", handlers.plain_ok, "Liveness/readiness: OK"),
    RouteSpec(
        "/healthz", ("*",), PUBLIC, "healthPortZ", handlers.plain_ok, "Liveness/readiness: OK"
    ),
)
