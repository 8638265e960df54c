"""The one way the operator side talks HTTP to a runtime.

Steps, the CLI, the load and crash tools and ``diagnose`` all reach a runtime through
``RuntimeClient``, so a failure reads the same everywhere: a connection that cannot be made is a
``TargetUnavailable`` naming the URL, and a status the call did not expect is a
``RuntimeAPIError`` carrying the runtime's problem+json ``detail`` and the fix for that status.
Keys travel in the client's headers only; they never appear in an error message.

The client accepts any ``httpx.Client`` (``http=``), so tests drive it against the ASGI app
in-process with Starlette's ``TestClient`` (no sockets).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from helm_runbook.errors import RunbookError, RuntimeAPIError, StepFailed, TargetUnavailable

Auth = Literal["admin", "service", "none"]

ADMIN_KEY_NAME = "HELM_ADMIN_API_KEY"
SERVICE_KEY_NAME = "HELM_SERVICE_API_KEY"
#: ``GET /api/v1/receipts`` serves at most this many per page; paging follows ``next_cursor``.
PAGE_LIMIT = 1000
#: A runtime that keeps answering ``has_more`` is cut off here (1,000,000 receipts at most).
MAX_PAGES = 1000


@dataclass(frozen=True)
class Credentials:
    """Who the client is: the chart's admin and service keys and the tenant/principal headers."""

    admin_key: str | None = None
    service_key: str | None = None
    tenant: str = "default"
    principal: str = "system-admin"

    @classmethod
    def from_secret(
        cls, data: Mapping[str, bytes] | None, *, secret: str, tenant: str = "default",
        principal: str = "system-admin",
    ) -> Credentials:  # fmt: skip
        """The keys of the release's auth Secret (``kubectl get secret``), as a step reads them."""
        if not data or ADMIN_KEY_NAME not in data:
            raise StepFailed("auth.secret", expected=f"Secret {secret} with {ADMIN_KEY_NAME}",
                             seen=f"Secret {secret} not found" if not data else f"keys {sorted(data)}",
                             fix="create it with runbook 02-secret-setup (or pass the name of your auth Secret)")  # fmt: skip
        service = data.get(SERVICE_KEY_NAME)
        return cls(data[ADMIN_KEY_NAME].decode(), service.decode() if service else None, tenant, principal)  # fmt: skip

    def headers(self, auth: Auth) -> dict[str, str]:
        key = {"admin": self.admin_key, "service": self.service_key, "none": None}[auth]
        if auth != "none" and not key:
            name = ADMIN_KEY_NAME if auth == "admin" else SERVICE_KEY_NAME
            raise RunbookError(
                f"this call needs the {auth} API key ({name}) and none was given",
                fix=f"export HELM_RUNBOOK_{name.removeprefix('HELM_')} with the value of {name} "
                "from the release's auth Secret",
            )
        headers = {"X-Helm-Tenant-ID": self.tenant, "X-Helm-Principal-ID": self.principal}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


def _detail(response: httpx.Response) -> str:
    """The problem+json ``detail`` (or the start of the body), on one line."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("detail"), str):
        text = doc["detail"]
    elif isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        text = str(doc["error"].get("message", ""))
    else:
        text = response.text
    return " ".join(text.split())[:300] or "(empty body)"


def _fix_for(status: int, path: str, auth: Auth) -> str:
    if status == 400:
        return f"the runtime refused the request to {path} as malformed (its reason is above): correct it"
    if status == 401:
        name = SERVICE_KEY_NAME if auth == "service" else ADMIN_KEY_NAME
        return (f"send the value of {name} from the release's auth Secret (helm.auth.existingSecret, "
                "created by runbook 02-secret-setup)")  # fmt: skip
    if status == 403:
        return ("send X-Helm-Tenant-ID and X-Helm-Principal-ID matching the release's "
                "helm.auth.tenantID and helm.auth.principalID")  # fmt: skip
    if status == 404:
        return (f"nothing serves {path} at this URL: point it at the API port (8080, "
                "kubectl port-forward svc/<release> 8080:8080), not the health port 8081")  # fmt: skip
    if status == 413:
        return "send a smaller body: the runtime caps request bodies (HELM_LIMIT_MAX_BODY_BYTES)"
    if status == 429:
        return "slow down and retry after Retry-After, or raise the release's helm.limits"
    if status == 503:
        return "the runtime refused to serve (its reason is above); kubectl logs deploy/<release> says more"
    return "see the runtime log: kubectl logs deploy/<release>"


class _Resolved(httpx.HTTPTransport):
    """Connects requests for one host name to a fixed address, keeping the name for SNI, the
    certificate check and the Host header (what ``curl --resolve host:443:address`` does)."""

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        hostname, _, port = address.rpartition(":")
        self.address = (hostname, int(port))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self.host:
            request.extensions = {**request.extensions, "sni_hostname": self.host}
            request.url = request.url.copy_with(host=self.address[0], port=self.address[1])
        return super().handle_request(request)


@functools.cache
def system_tls() -> ssl.SSLContext:
    """The system CAs, loaded once per process: httpx loads them for every client it builds
    (about 20 ms each), and a runbook builds one per step, most of them for plain http to a
    port-forward."""
    return ssl.create_default_context()


class RuntimeClient:
    """Typed calls to a runtime's API port (and, optionally, its health port)."""

    def __init__(
        self, api_url: str, *, health_url: str | None = None, credentials: Credentials | None = None,
        timeout: float = 10.0, http: httpx.Client | None = None, health_http: httpx.Client | None = None,
    ) -> None:  # fmt: skip
        self.api_url = api_url.rstrip("/")
        self.health_url = health_url.rstrip("/") if health_url else None
        self.credentials = credentials or Credentials()
        self._owned = http is None
        self._http = http or httpx.Client(timeout=timeout, verify=system_tls())
        self._health_http = health_http or self._http

    @classmethod
    def for_target(
        cls, target: Any, *, auth_secret: str = "helm-auth", tenant: str = "default",
        principal: str = "system-admin", timeout: float = 10.0,
    ) -> RuntimeClient:  # fmt: skip
        """A client for a target's release: URLs from its port-forwards, keys from its auth Secret."""
        credentials = Credentials.from_secret(
            target.secrets.get(auth_secret), secret=auth_secret, tenant=tenant, principal=principal
        )
        return cls(target.url("http"), health_url=target.url("health"), credentials=credentials,
                   timeout=timeout)  # fmt: skip

    @classmethod
    def for_ingress(
        cls, target: Any, *, host: str, address: str, ca_pem: bytes | None, auth_secret: str = "helm-auth",
        tenant: str = "default", principal: str = "system-admin", timeout: float = 10.0,
    ) -> RuntimeClient:  # fmt: skip
        """A client for ``https://HOST`` with HOST resolved to ``address`` (``curl --resolve``):
        SNI and Host name the host, the certificate must chain to ``ca_pem`` (None: the system CAs)."""
        credentials = Credentials.from_secret(
            target.secrets.get(auth_secret), secret=auth_secret, tenant=tenant, principal=principal
        )
        verify = ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else system_tls()
        http = httpx.Client(transport=_Resolved(host, address, verify=verify), timeout=timeout)
        client = cls(f"https://{host}", credentials=credentials, http=http)
        client._owned = True
        return client

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------

    def send(
        self, method: str, path: str, *, auth: Auth = "admin", base: str | None = None,
        headers: Mapping[str, str | None] | None = None, timeout: float | None = None, **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        """One request, any status; only a transport failure raises (``TargetUnavailable``).

        ``headers`` add to the credentials' headers; a ``None`` value leaves that header out."""
        url = (base or self.api_url) + path
        http = self._health_http if base is not None and base == self.health_url else self._http
        merged: dict[str, str | None] = {**self.credentials.headers(auth), **(headers or {})}
        sent = {name: value for name, value in merged.items() if value is not None}
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            return http.request(method, url, headers=sent, **extra, **kwargs)
        except httpx.TimeoutException as exc:
            raise TargetUnavailable(
                f"{method} {url} timed out ({type(exc).__name__})",
                fix="check the runtime is ready (kubectl rollout status) and the port-forward still runs",
            ) from exc
        except httpx.HTTPError as exc:
            reason = str(exc).split("\n", 1)[0] or type(exc).__name__
            raise TargetUnavailable(
                f"cannot reach {url}: {reason}",
                fix="check the URL and that the runtime runs: kubectl port-forward svc/<release> "
                "8080:8080 8081:8081, or run the install runbook 03-production-install first",
            ) from exc

    def call(
        self, method: str, path: str, *, auth: Auth = "admin", expect: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        """One request whose status must be in ``expect``; any other is a ``RuntimeAPIError``."""
        response = self.send(method, path, auth=auth, **kwargs)
        if response.status_code not in expect:
            raise RuntimeAPIError(
                f"{method} {self.api_url}{path} answered {response.status_code}: {_detail(response)}",
                fix=_fix_for(response.status_code, path, auth),
                status=response.status_code,
                detail=_detail(response),
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """``call`` whose body must be a JSON object."""
        response = self.call(method, path, **kwargs)
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RuntimeAPIError(
                f"{method} {self.api_url}{path} answered {response.status_code} without a JSON "
                f"object: {_detail(response)}",
                fix="point the URL at the runtime's API port (8080), not a proxy or the health port",
                status=response.status_code,
                detail=_detail(response),
            )
        return doc

    # -- the runtime's routes --------------------------------------------------------------------

    def health(self, port: Literal["api", "health"] = "api") -> httpx.Response:
        """``GET /health`` on the API or the health port (any status: smoke checks compare it)."""
        if port == "health" and not self.health_url:
            raise RunbookError(
                "no health-port URL was given", fix="pass the health port URL (8081)"
            )
        base = self.health_url if port == "health" else self.api_url
        return self.send("GET", "/health", auth="none", base=base)

    def evaluate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/evaluate``: the decision, with its ``receipt_id``."""
        return self.json("POST", "/api/v1/evaluate", json=dict(body))

    def receipts_page(self, **params: Any) -> dict[str, Any]:
        """One page of ``GET /api/v1/receipts`` (filters and cursor as query parameters)."""
        return self.json(
            "GET", "/api/v1/receipts", params={k: v for k, v in params.items() if v is not None}
        )

    def iter_receipts(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every receipt matching ``filters``, page by page through ``next_cursor`` (bounded)."""
        params = {"limit": PAGE_LIMIT, **filters}
        for _ in range(MAX_PAGES):
            page = self.receipts_page(**params)
            receipts = page.get("receipts")
            if not isinstance(receipts, list):
                raise RuntimeAPIError("GET /api/v1/receipts answered without a receipts list",
                                      fix="point the URL at the runtime's API port (8080)",
                                      status=200, detail=str(sorted(page)))  # fmt: skip
            yield from receipts
            if not (page.get("has_more") and page.get("next_cursor")):
                return
            params = {**params, "since": page["next_cursor"]}
        raise RuntimeAPIError(f"GET /api/v1/receipts still had more after {MAX_PAGES} pages",
                              fix="narrow the listing with session_id or from/to filters",
                              status=200, detail="has_more")  # fmt: skip

    def receipts(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.iter_receipts(**filters))

    def reconcile(self) -> dict[str, Any]:
        """``POST /internal/policy/reconcile`` with the service key: the wake hint."""
        return self.json("POST", "/internal/policy/reconcile", auth="service")

    def chat(self, model: str, content: str = "hello", *, principal: str | None = None,
             headers: Mapping[str, str] | None = None) -> httpx.Response:  # fmt: skip
        """One chat completion through the governed proxy (any status: the caller judges it)."""
        extra = {"X-Helm-Principal": principal} if principal else {}
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        return self.send("POST", "/v1/chat/completions", auth="none", json=body,
                         headers={**extra, **(headers or {})})  # fmt: skip


__all__ = ["Credentials", "RuntimeAPIError", "RuntimeClient"]
