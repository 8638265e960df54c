"""The smoke step through the client against the runtime in-process (milliseconds, no sockets)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from helm_runbook.errors import RuntimeAPIError
from helm_runbook.runtime.app import create_health_app
from helm_runbook.runtime.context import Runtime
from helm_runbook.steps.smoke import smoke
from helm_runbook.tools.client import Credentials, RuntimeClient
from tests.conftest import CREDENTIALS


def test_smoke_passes_on_a_healthy_runtime(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    client = RuntimeClient("http://api", health_url="http://health", credentials=CREDENTIALS,
                           http=client_for(runtime), health_http=TestClient(create_health_app()))  # fmt: skip
    report = smoke(client)
    assert report.ok and [row[0] for row in report.rows] == [
        "smoke.health.8081", "smoke.health.8080", "smoke.evaluate", "smoke.receipts.unauthenticated",
        "smoke.receipts.no-tenant", "smoke.receipts.listed",
    ]  # fmt: skip
    assert report.values["evaluate_verdict"] == "DENY"


def test_smoke_with_a_wrong_key_stops_at_the_governed_request(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    client = RuntimeClient(
        "http://api", credentials=Credentials("not-the-key"), http=client_for(runtime)
    )
    with pytest.raises(RuntimeAPIError) as err:
        smoke(client)
    assert err.value.status == 401 and "/api/v1/evaluate" in err.value.message


def test_smoke_pointed_at_the_health_port_says_so() -> None:
    health = TestClient(create_health_app())
    client = RuntimeClient("http://health", credentials=CREDENTIALS, http=health)
    with pytest.raises(RuntimeAPIError) as err:
        smoke(client)
    assert err.value.status == 404 and "not the health port" in err.value.fix


def test_smoke_names_the_charts_placeholder_upstream_without_failing(
    runtime: Runtime, client_for: Callable[[Runtime], TestClient]
) -> None:
    client = RuntimeClient("http://api", credentials=CREDENTIALS, http=client_for(runtime))
    report = smoke(client, upstream="https://your-upstream.example/v1")
    assert report.ok and report.values["proxy_upstream_placeholder"] is True
    [row] = [r for r in report.rows if r[0] == "smoke.proxy.upstream"]
    assert row[3] == "WARN" and "helm.proxy.upstream=https://<your-upstream>/v1" in str(row[2])
    assert (
        "proxy_upstream_placeholder"
        not in smoke(client, upstream="https://llm.example.internal/v1").values
    )
