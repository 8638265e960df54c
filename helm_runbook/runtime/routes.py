"""The runtime's route table: path, methods, auth class and operation id (upstream's RuntimeRouteSpecs).

This table is the single source for the app's routing and for generated reference docs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from helm_runbook.formats.evidence import MAX_PACK_BYTES
from helm_runbook.runtime import handlers, proxy
from helm_runbook.runtime.auth import PUBLIC, SERVICE_INTERNAL, TENANT_SCOPED, Identity

Handler = Callable[[Request, Identity], Awaitable[Response]]
GET = ("GET", "HEAD")
POST = ("POST",)


@dataclass(frozen=True)
class RouteSpec:
    path: str
    methods: tuple[str, ...]
    auth: str
    operation_id: str
    handler: Handler
    summary: str
    limited: bool = True  # rate limits and the concurrency cap apply (not to health/version)
    max_body: int = 0  # bytes; the body is streamed under this cap before the handler runs


def _route(path: str, methods: tuple[str, ...], auth: str, op: str, handler: Handler, summary: str, *,
           limited: bool = True, max_body: int = 0) -> RouteSpec:  # fmt: skip
    return RouteSpec(path, methods, auth, op, handler, summary, limited, max_body)


EVALUATE_BODY = 1 << 20
PROXY_BODY = 10 << 20
EXPORT_BODY = 64 << 10
PACK_BODY = MAX_PACK_BYTES + (1 << 20)  # the pack plus multipart framing
WAKE_HINT_BODY = 1 << 10  # wake hints carry no body; a small one is read to be refused with 400


# fmt: off
API_ROUTES: tuple[RouteSpec, ...] = (
    _route("/health", GET, PUBLIC, "health", handlers.plain_ok,
           "Plain OK (503 naming a storage fault); also on the API port (docs/upstream-contract.md#d1)", limited=False),
    _route("/healthz", GET, PUBLIC, "healthCheck", handlers.healthz, "Health check (JSON)", limited=False),
    _route("/api/health", GET, PUBLIC, "getPublicDemoHealth", handlers.api_health,
           "Health with build and version metadata", limited=False),
    _route("/version", GET, PUBLIC, "getVersion", handlers.version, "Version information", limited=False),
    _route("/api/v1/version", GET, PUBLIC, "getVersionV1", handlers.version, "Version information",
           limited=False),
    _route("/api/v1/evaluate", POST, TENANT_SCOPED, "evaluateDecision", handlers.evaluate,
           "Evaluate a governed intent and emit a receipt", max_body=EVALUATE_BODY),
    _route("/api/v1/receipts", GET, TENANT_SCOPED, "listReceipts", handlers.list_receipts,
           "List durable receipts, oldest first"),
    _route("/api/v1/receipts/{receipt_id}", GET, TENANT_SCOPED, "getConsoleReceipt", handlers.get_receipt,
           "Get a receipt by ID"),
    _route("/api/v1/proofgraph/sessions", GET, TENANT_SCOPED, "listSessions", handlers.proofgraph_sessions,
           "List ProofGraph sessions"),
    _route("/api/v1/proofgraph/sessions/{session_id}/receipts", GET, TENANT_SCOPED, "getSessionReceipts",
           handlers.proofgraph_session_receipts, "Receipts of one session in chain order"),
    _route("/api/v1/proofgraph/receipts/{receipt_hash}", GET, TENANT_SCOPED, "getReceipt",
           handlers.proofgraph_receipt, "Get a single receipt by chain hash"),
    _route("/v1/chat/completions", POST, PUBLIC, "chatCompletions", proxy.chat_completions,
           "Governed OpenAI-compatible chat completions", max_body=PROXY_BODY),
    _route("/api/v1/evidence/export", POST, TENANT_SCOPED, "exportEvidence", handlers.evidence_export,
           "Export a sealed evidence pack (tar.gz)", max_body=EXPORT_BODY),
    _route("/api/v1/evidence/verify", POST, PUBLIC, "verifyEvidence", handlers.evidence_verify,
           "Verify an evidence pack against the runtime's keys", max_body=PACK_BODY),
    _route("/api/v1/replay/verify", POST, PUBLIC, "replayVerify", handlers.replay_verify,
           "Verify an evidence pack and its replay bindings", max_body=PACK_BODY),
    _route("/internal/policy/reconcile", POST, SERVICE_INTERNAL, "reconcilePolicy", handlers.policy_reconcile,
           "Wake hint: reconcile the policy now (no body; returns ReconcileStatus)", max_body=WAKE_HINT_BODY),
)

# Health port (8081): no middleware, any method (docs/upstream-contract.md#health).
HEALTH_ROUTES: tuple[RouteSpec, ...] = (
    _route("/health", ("*",), PUBLIC, "healthPort", handlers.plain_ok, "Liveness/readiness: OK, or 503 naming a storage fault", limited=False),
    _route("/healthz", ("*",), PUBLIC, "healthPortZ", handlers.plain_ok, "Liveness/readiness: OK, or 503 naming a storage fault", limited=False),
)
# fmt: on
