"""Route auth classes and their 401/403 matrix (docs/upstream-contract.md#auth).

``public`` needs nothing; ``admin`` needs the admin bearer key; ``tenant_scoped`` adds the
tenant and principal headers bound to the runtime's identity; ``service_internal`` needs the
service bearer key. Keys are compared in constant time; with no key configured the protected
routes always answer 401 (fail closed).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.datastructures import Secret
from starlette.requests import Request

from helm_runbook.runtime.problems import ProblemError

PUBLIC, ADMIN, TENANT_SCOPED, SERVICE_INTERNAL = (
    "public",
    "admin",
    "tenant_scoped",
    "service_internal",
)


@dataclass(frozen=True)
class Identity:
    """Who a request acts as once authorised; tenant/principal are empty on non-tenant routes."""

    tenant_id: str = ""
    principal_id: str = ""


def _bearer(request: Request, key: Secret | None, *, missing_key: str, invalid: str) -> None:
    if key is None:
        raise ProblemError(401, missing_key)
    header = request.headers.get("authorization")
    if header is None:
        raise ProblemError(401, "Missing Authorization header")
    if not header.startswith("Bearer "):  # "Bearer" is case-sensitive upstream
        raise ProblemError(401, "Invalid Authorization header format (expected 'Bearer <key>')")
    token = header[len("Bearer ") :]
    if not token:
        raise ProblemError(401, "Missing bearer token")
    if not hmac.compare_digest(token.encode(), str(key).encode()):
        raise ProblemError(401, invalid)


def authorize(
    request: Request,
    auth_class: str,
    *,
    admin_key: Secret | None,
    service_key: Secret | None,
    tenant_id: str,
    principal_id: str,
) -> Identity:
    """Return the request's identity or raise ProblemError with upstream's status and detail."""
    if auth_class == PUBLIC:
        return Identity()
    if auth_class == SERVICE_INTERNAL:
        _bearer(
            request,
            service_key,
            missing_key="Service API key not configured (set HELM_SERVICE_API_KEY)",
            invalid="Invalid service API key",
        )
        return Identity()
    _bearer(
        request,
        admin_key,
        missing_key="Admin API key not configured (set HELM_ADMIN_API_KEY)",
        invalid="Invalid API key",
    )
    if auth_class == ADMIN:
        return Identity(principal_id=principal_id)
    tenant = request.headers.get("x-helm-tenant-id") or request.query_params.get("tenant_id", "")
    principal = request.headers.get("x-helm-principal-id", "")
    if not tenant:
        raise ProblemError(403, "Tenant-scoped route requires explicit tenant binding")
    if not principal:
        raise ProblemError(403, "Tenant-scoped route requires explicit principal binding")
    if tenant != tenant_id:
        raise ProblemError(403, "Tenant-scoped route tenant mismatch")
    if principal != principal_id:
        raise ProblemError(403, "Tenant-scoped route principal mismatch")
    return Identity(tenant_id=tenant, principal_id=principal)
