"""The governed proxy, driven by the official ``openai`` client against a real server and the
bundled stand-in upstream."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from helm_runbook.runtime.proxy import upstream_endpoint
from helm_runbook.standins.mock_upstream import MockUpstreamConfig, MockUpstreamServer
from helm_runbook.standins.process import RuntimeProcess, free_port
from helm_runbook.tools.verify import verify_receipts
from tests.conftest import TENANT_HEADERS, default_env, write_policy

pytestmark = pytest.mark.slow

# LLM_INFERENCE is allowed for the stand-in's model only: anything else is MISSING_REQUIREMENT.
PROXY_POLICY = [
    {"action": "LLM_INFERENCE", "expression": 'input.effect.params.model.startsWith("mock-")'}
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstreamServer]:
    with MockUpstreamServer(MockUpstreamConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstreamServer
) -> Iterator[RuntimeProcess]:
    root = tmp_path_factory.mktemp("proxy")
    env = {**default_env(), "HELM_ENABLE_OPENAI_PROXY": "1", "HELM_UPSTREAM_URL": upstream.url}
    with RuntimeProcess(write_policy(root / "policy", PROXY_POLICY), root / "data", env=env) as rt:
        yield rt


@pytest.fixture
def clients() -> Iterator[Callable[[RuntimeProcess], openai.OpenAI]]:
    """Official clients pointed at a runtime's proxy (base_url), closed after the test."""
    made: list[openai.OpenAI] = []

    def make(rt: RuntimeProcess) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=f"{rt.url}/v1", api_key="sk-client-key", max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_allow_is_forwarded_with_helm_headers(
    clients: Callable[[RuntimeProcess], openai.OpenAI],
    runtime: RuntimeProcess,
    upstream: MockUpstreamServer,
) -> None:
    raw = clients(runtime).chat.completions.with_raw_response.create(
        model="mock-model", messages=[{"role": "user", "content": "hello there"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert raw.headers["x-helm-verdict"] == "ALLOW"
    assert raw.headers["x-helm-governed"] == "true"
    assert raw.headers["x-helm-receipt-id"].startswith("rcpt-")
    assert raw.headers["x-helm-policy-version"].startswith("sha256:")
    assert upstream.config.requests[-1]["headers"]["authorization"] == "Bearer sk-client-key"


def test_deny_is_403_governance_blocked_and_never_reaches_upstream(
    clients: Callable[[RuntimeProcess], openai.OpenAI],
    runtime: RuntimeProcess,
    upstream: MockUpstreamServer,
) -> None:
    before = len(upstream.config.requests)
    with pytest.raises(openai.PermissionDeniedError) as blocked:
        clients(runtime).chat.completions.create(
            model="gpt-evil", messages=[{"role": "user", "content": "x"}]
        )
    assert blocked.value.status_code == 403
    body = blocked.value.response.json()
    assert body["title"] == "Governance Blocked"
    assert "MISSING_REQUIREMENT" in body["detail"]
    assert blocked.value.response.headers["x-helm-verdict"] == "DENY"
    assert len(upstream.config.requests) == before


def test_streaming_is_relayed_chunk_by_chunk(
    clients: Callable[[RuntimeProcess], openai.OpenAI], runtime: RuntimeProcess
) -> None:
    stream = clients(runtime).chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    pieces = [
        chunk.choices[0].delta.content
        for chunk in stream
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert "".join(pieces) == "echo: one two three"
    assert len(pieces) == 4


def test_upstream_error_status_is_relayed(
    clients: Callable[[RuntimeProcess], openai.OpenAI], runtime: RuntimeProcess
) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        clients(runtime).chat.completions.create(
            model="mock-status-500", messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.response.headers["x-helm-governed"] == "true"
    assert failed.value.response.json()["error"]["message"] == "forced status 500"


def test_upstream_down_is_502_and_none_configured_is_503(
    clients: Callable[[RuntimeProcess], openai.OpenAI], tmp_path: Path
) -> None:
    down = {
        **default_env(),
        "HELM_ENABLE_OPENAI_PROXY": "1",
        "HELM_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}",
    }
    with RuntimeProcess(
        write_policy(tmp_path / "p1", PROXY_POLICY), tmp_path / "d1", env=down
    ) as rt:
        with pytest.raises(openai.APIStatusError) as failed:
            clients(rt).chat.completions.create(
                model="mock-model", messages=[{"role": "user", "content": "x"}]
            )
        assert failed.value.status_code == 502
        assert failed.value.response.json()["error"]["type"] == "helm_upstream_error"
    unset = {**default_env(), "HELM_ENABLE_OPENAI_PROXY": "true"}
    with RuntimeProcess(
        write_policy(tmp_path / "p2", PROXY_POLICY), tmp_path / "d2", env=unset
    ) as rt:
        response = httpx.post(
            f"{rt.url}/v1/chat/completions", json={"model": "mock-model", "messages": []}
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "upstream_not_configured"
        assert response.headers["x-helm-receipt-id"].startswith("rcpt-")


def test_disabled_proxy_is_404_problem(tmp_path: Path) -> None:
    with RuntimeProcess(
        write_policy(tmp_path / "p", PROXY_POLICY), tmp_path / "d", env=default_env()
    ) as rt:
        response = httpx.post(
            f"{rt.url}/v1/chat/completions", json={"model": "mock-model", "messages": []}
        )
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "HELM_ENABLE_OPENAI_PROXY" in response.json()["detail"]


def test_proxy_receipts_are_listed_in_the_tenant_scope_and_verify(
    clients: Callable[[RuntimeProcess], openai.OpenAI], runtime: RuntimeProcess
) -> None:
    raw = clients(runtime).chat.completions.with_raw_response.create(
        model="mock-model", messages=[{"role": "user", "content": "receipt me"}]
    )
    receipt_id = raw.headers["x-helm-receipt-id"]
    listed = httpx.get(
        f"{runtime.url}/api/v1/receipts", headers=TENANT_HEADERS, params={"limit": 1000}
    ).json()
    proxied = [r for r in listed["receipts"] if r["metadata"]["source"] == "api.openai_proxy"]
    assert receipt_id in {r["receipt_id"] for r in proxied}
    assert {r["effect_id"] for r in proxied} == {"LLM_INFERENCE"}
    public_key = (runtime.data_dir / "root.pub").read_text().strip()
    assert verify_receipts(listed["receipts"], public_key).ok


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://x/v1", "https://x/v1/chat/completions"),
        ("https://x/v1/", "https://x/v1/chat/completions"),
        ("https://x", "https://x/v1/chat/completions"),
        ("http://127.0.0.1:9/openai/v1", "http://127.0.0.1:9/openai/v1/chat/completions"),
    ],
)
def test_upstream_url_join_never_doubles_v1(base: str, expected: str) -> None:
    assert upstream_endpoint(base) == expected


class CountingUpstream(socketserver.ThreadingTCPServer):
    """A minimal keep-alive upstream on 127.0.0.1 that counts the connections it accepts and can
    drop one after its answer, as a server whose keep-alive timeout passed does."""

    daemon_threads = True
    answer = b'{"id": "c", "object": "chat.completion", "choices": []}'

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.connections = 0
        self.drop_after_answer = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _CountingHandler(socketserver.StreamRequestHandler):
    server: CountingUpstream

    def handle(self) -> None:
        self.server.connections += 1
        while head := self.rfile.readline():
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self.rfile.read(length)
            body = self.server.answer
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            if self.server.drop_after_answer or not head.startswith(b"POST"):
                self.server.drop_after_answer = False
                return


def test_calls_reuse_one_upstream_connection_and_reconnect_when_it_is_dropped(
    tmp_path: Path,
) -> None:
    """The proxy keeps its upstream connection alive between calls (a new connection per call
    costs a handshake each time) and opens a new one when the upstream has closed it."""
    upstream = CountingUpstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    env = {**default_env(), "HELM_ENABLE_OPENAI_PROXY": "1", "HELM_UPSTREAM_URL": upstream.url}
    chat = {"model": "mock-model", "messages": [{"role": "user", "content": "x"}]}
    try:
        with (
            RuntimeProcess(write_policy(tmp_path / "p", PROXY_POLICY), tmp_path / "d", env=env) as rt,
            httpx.Client(base_url=rt.url) as client,
        ):  # fmt: skip
            for _ in range(10):
                assert client.post("/v1/chat/completions", json=chat).status_code == 200
            assert upstream.connections == 1
            upstream.drop_after_answer = True
            assert client.post("/v1/chat/completions", json=chat).status_code == 200
            time.sleep(0.3)  # the upstream's FIN reaches the runtime while the connection idles
            for _ in range(3):
                assert client.post("/v1/chat/completions", json=chat).status_code == 200
            assert upstream.connections == 2
    finally:
        upstream.shutdown()
        upstream.server_close()
