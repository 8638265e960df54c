"""Hostile clients over real HTTP against ``helm-ai-kernel serve`` on 127.0.0.1 (issue 23.7).

Each attack is bounded in bytes, connections and time; during each one the health port must keep
answering within 1 s, and the runtime must answer the attacker with a 4xx (or close on it),
never a 5xx, and keep serving ordinary clients.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helm_runbook.runtime import proxy
from helm_runbook.runtime.app import create_app
from helm_runbook.standins.background import BackgroundServer
from helm_runbook.standins.hostile import (
    HealthWatch,
    RssWatch,
    big_listing,
    chunked_flood,
    deep_json,
    garbage,
    huge_header,
    multipart_flood,
    read_response,
    slow_bodies,
    slow_headers,
)
from helm_runbook.standins.process import RuntimeProcess
from tests.conftest import (
    ALLOW_FILE_READ,
    TENANT_HEADERS,
    RuntimeFactory,
    default_env,
    write_policy,
)

pytestmark = pytest.mark.slow
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0


def _start(root: Path, env: dict[str, str]) -> RuntimeProcess:
    return RuntimeProcess(
        write_policy(root / "policy", ALLOW_FILE_READ),
        root / "data",
        env={**default_env(), **env},
    ).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = _start(
        tmp_path_factory.mktemp("hostile"),
        {
            "HELM_HTTP_HEADER_TIMEOUT": f"{HEADER_TIMEOUT_S:g}s",
            "HELM_HTTP_BODY_TIMEOUT": f"{BODY_TIMEOUT_S:g}s",
            "HELM_CONCURRENCY_MAX": "4",
            "HELM_ENABLE_OPENAI_PROXY": "1",
        },
    )
    yield proc
    proc.stop()


@pytest.fixture
def health(server: RuntimeProcess) -> Iterator[HealthWatch]:
    """The health port, polled through the attack: never a failure (an error or a probe slower
    than the chart's readiness timeout)."""
    with HealthWatch(server.health_url) as watch:
        yield watch
    assert not watch.failures, f"{watch.failures}; worst probe {watch.worst_s:.2f}s"
    assert server.proc is not None and server.proc.poll() is None, "the runtime died"


def test_deep_json_is_400_and_the_keep_alive_connection_survives(
    server: RuntimeProcess, health: HealthWatch
) -> None:
    seen = deep_json(server.url, TENANT_HEADERS)
    assert seen.statuses == [400, 200], seen
    assert seen.details[0] == "Invalid JSON body: nesting deeper than 64 levels"


def test_a_chunked_flood_is_refused_without_buffering_it(
    server: RuntimeProcess, health: HealthWatch
) -> None:
    assert server.proc is not None
    with RssWatch(server.proc.pid) as rss:
        seen = chunked_flood(server.url, TENANT_HEADERS, total=300 << 20)
    assert seen.statuses == [413], seen
    assert seen.details == ["Request body exceeds 1048576 bytes"]
    assert rss.peak_mib - rss.baseline_mib < 64, (rss.baseline_mib, rss.peak_mib)


@pytest.mark.parametrize("port", ["api", "health"])
def test_a_64_mib_header_is_refused(server: RuntimeProcess, health: HealthWatch, port: str) -> None:
    url = server.url if port == "api" else server.health_url
    seen = huge_header(url, "/healthz", size=64 << 20)
    assert seen.statuses[0] in (431, None), seen  # 431, or reset while still sending
    assert seen.figures["sent_mib"] < 64, "the server read the whole header"


def test_slowloris_headers_are_cut_off_at_the_header_timeout(
    server: RuntimeProcess, health: HealthWatch
) -> None:
    seen = slow_headers(server.url, connections=20, seconds=HEADER_TIMEOUT_S + 3)
    assert seen.figures["released"] == 20, seen
    assert seen.figures["max_held_s"] < HEADER_TIMEOUT_S + 1.5, seen


def test_half_open_bodies_hold_no_concurrency_slot_and_time_out(
    server: RuntimeProcess, health: HealthWatch
) -> None:
    seen = slow_bodies(server.url, TENANT_HEADERS, connections=20, seconds=BODY_TIMEOUT_S + 3)
    assert seen.statuses == [200], "an ordinary client was locked out by 20 half-open requests"
    assert seen.figures["released"] == 20, seen
    assert seen.figures["max_held_s"] < BODY_TIMEOUT_S + 1.5, seen


def test_a_multipart_flood_is_400_problem(server: RuntimeProcess, health: HealthWatch) -> None:
    seen = multipart_flood(server.url, files=200)
    assert seen.statuses == [400], seen
    assert "Too many files" in seen.details[0]


def test_spoofed_principals_spend_no_real_principals_bucket(
    tmp_path: Path,
) -> None:
    proc = _start(tmp_path, {"HELM_LIMIT_ACTOR_RPS": "0.001", "HELM_LIMIT_ACTOR_BURST": "3"})
    try:
        with HealthWatch(proc.health_url) as watch, httpx.Client(base_url=proc.url) as client:
            spoofed = {**TENANT_HEADERS, "Authorization": "Bearer stolen-guess"}
            refused = [
                client.get("/api/v1/receipts", headers=spoofed).status_code for _ in range(20)
            ]
            fresh = [
                client.post("/api/v1/evidence/verify", content=b"x",
                            headers={"X-Helm-Principal-ID": f"p{n}", "X-Helm-Principal": f"p{n}"}).status_code
                for n in range(5)
            ]  # fmt: skip
            real = [
                client.get("/api/v1/receipts", headers=TENANT_HEADERS).status_code for _ in range(3)
            ]
        assert set(refused) <= {401, 429} and refused.count(401) == 3, refused
        assert set(fresh) == {429}, fresh  # same address, already spent: fresh names do not help
        assert real == [200, 200, 200], real
        assert not watch.failures, watch.failures
    finally:
        proc.stop()


def test_garbage_parameters_and_lone_surrogates_are_4xx(
    server: RuntimeProcess, health: HealthWatch
) -> None:
    seen = garbage(server.url, TENANT_HEADERS)
    assert seen.statuses[:-1] == [400] * (len(seen.statuses) - 1), list(
        zip(seen.statuses, seen.details, strict=True)
    )
    assert seen.details[-2].startswith(
        "Invalid JSON body: a string contains a lone UTF-16 surrogate"
    )
    assert seen.statuses[-1] == 400  # raw surrogate bytes in a claimed principal: a name refused
    assert seen.details[-1].startswith("X-Helm-Principal must be 1 to 256 bytes"), seen.details[-1]


def test_megabyte_names_are_refused_before_any_receipt_and_the_listing_stays_small(
    server: RuntimeProcess, health: HealthWatch
) -> None:
    assert server.proc is not None
    with RssWatch(server.proc.pid) as rss:
        seen = big_listing(server.url, TENANT_HEADERS, receipts=10, size=1_000_000)
    assert seen.statuses == [400] * 10 + [200], seen.statuses
    assert seen.figures["response_mib"] < 1, seen
    assert rss.peak_mib - rss.baseline_mib < 200, (rss.baseline_mib, rss.peak_mib)


def test_an_unhandled_error_keeps_the_connection_and_logs_no_body(
    make_runtime: RuntimeFactory, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()

    async def explode(**kwargs: object) -> None:
        raise LookupError(f"no luck with {kwargs}")

    monkeypatch.setattr(runtime.kernel, "evaluate_async", explode)
    body = (
        b'{"tool": "t", "effect_level": "E1", "session_id": "s", "args": {"card": "SECRET-4111"}}'
    )
    with (
        BackgroundServer(create_app(runtime)) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        head = "".join(f"{k}: {v}\r\n" for k, v in TENANT_HEADERS.items())
        sock.sendall(
            f"POST /api/v1/evaluate HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert read_response(sock)[0] == 500
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200, "the keep-alive connection was dropped after the 500"
    logged = capfd.readouterr().err
    assert "LookupError" in logged and "SECRET" not in logged


def test_a_huge_or_gzip_bomb_upstream_answer_is_502_not_buffered(
    make_runtime: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = gzip.compress(b'{"choices": "' + b"a" * (4 << 20) + b'"}')  # ~4 KiB on the wire

    async def upstream(request: Request) -> Response:
        return Response(
            bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    monkeypatch.setattr(proxy, "MAX_UPSTREAM_RESPONSE_BYTES", 1 << 20, raising=False)
    with BackgroundServer(
        Starlette(routes=[Route("/v1/chat/completions", upstream, methods=["POST"])])
    ) as up:
        runtime = make_runtime(
            [{"action": "LLM_INFERENCE"}],
            env={"HELM_ENABLE_OPENAI_PROXY": "1", "HELM_UPSTREAM_URL": up.base_url},
        )
        with BackgroundServer(create_app(runtime), on_shutdown=runtime.aclose) as server:
            response = httpx.post(server.base_url + "/v1/chat/completions", timeout=30,
                                  json={"model": "m", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_response_too_large"
    assert response.headers["x-helm-governed"] == "true"
