"""The runtime client in-process (Starlette's TestClient: no sockets): paging, errors with fixes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from helm_runbook.errors import RunbookError, RuntimeAPIError, TargetUnavailable
from helm_runbook.runtime.context import Runtime
from helm_runbook.tools.client import Credentials, RuntimeClient
from tests.conftest import ADMIN_KEY, CREDENTIALS, SERVICE_KEY, free_port

BASE = "http://testserver"


def _client(runtime: Runtime, client_for: Callable[[Runtime], TestClient],
            credentials: Credentials = CREDENTIALS) -> RuntimeClient:  # fmt: skip
    return RuntimeClient(BASE, credentials=credentials, http=client_for(runtime))


def test_receipts_follow_every_page(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    client = _client(runtime, client_for)
    ids = [
        client.evaluate({"tool": "shell", "effect_level": "E1", "session_id": f"s{i % 2}"})[
            "receipt_id"
        ]
        for i in range(7)
    ]
    assert [r["receipt_id"] for r in client.receipts(limit=2)] == ids
    assert len(client.receipts(session_id="s1", limit=1)) == 3


def test_a_wrong_key_is_a_runtime_error_naming_the_secret(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    client = _client(runtime, client_for, Credentials("wrong", "also-wrong"))
    with pytest.raises(RuntimeAPIError) as admin:
        client.evaluate({"tool": "shell", "effect_level": "E1"})
    assert admin.value.status == 401
    assert "HELM_ADMIN_API_KEY" in admin.value.fix and "wrong" not in str(admin.value)
    with pytest.raises(RuntimeAPIError) as service:
        client.reconcile()
    assert service.value.status == 401 and "HELM_SERVICE_API_KEY" in service.value.fix


def test_missing_tenant_header_and_unknown_path_say_what_to_send(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    client = _client(runtime, client_for)
    with pytest.raises(RuntimeAPIError) as forbidden:
        client.call("GET", "/api/v1/receipts", headers={"X-Helm-Tenant-ID": None})
    assert forbidden.value.status == 403 and "helm.auth.tenantID" in forbidden.value.fix
    with pytest.raises(RuntimeAPIError) as missing:
        client.json("GET", "/api/v1/nothing-here")
    assert missing.value.status == 404 and "API port" in missing.value.fix


def test_the_service_key_reconciles(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    status = _client(runtime, client_for, Credentials(ADMIN_KEY, SERVICE_KEY)).reconcile()
    assert status["reconcile_status"] in ("ok", "no_change")


def test_a_missing_key_is_refused_before_sending() -> None:
    with pytest.raises(RunbookError, match="admin API key") as err:
        RuntimeClient(BASE, credentials=Credentials()).evaluate(
            {"tool": "shell", "effect_level": "E1"}
        )
    assert "HELM_RUNBOOK_ADMIN_API_KEY" in err.value.fix


def test_an_unreachable_url_is_target_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        RuntimeClient(url, credentials=CREDENTIALS, timeout=2) as client,
        pytest.raises(TargetUnavailable) as err,
    ):
        client.receipts()  # fmt: skip
    assert url in err.value.message and "port-forward" in err.value.fix


def test_clients_share_the_system_cas_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx loads the CA bundle for each client it builds (~20 ms); a runbook builds one per
    step, so the client hands every one the same context, loaded once per process."""
    import ssl

    from helm_runbook.tools import client as module

    loads: list[int] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        loads.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    module.system_tls.cache_clear()
    try:
        for _ in range(3):
            with RuntimeClient("http://127.0.0.1:9"):
                pass
        assert len(loads) == 1
    finally:
        module.system_tls.cache_clear()
