"""The real server: ``python -m helm_runbook.runtime serve`` on 127.0.0.1, as the chart runs it.

Covers what only a real process shows: both ports, the start-up refusals and their exit codes,
and that every receipt acknowledged with 200 survives SIGKILL.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from helm_runbook.standins.process import RuntimeExited, RuntimeProcess
from helm_runbook.tools.verify import verify_receipts
from tests.conftest import ALLOW_FILE_READ, TENANT_HEADERS, default_env, write_policy

pytestmark = pytest.mark.slow


def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helm_runbook.runtime", *args],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve"], "serve requires --policy"),
        (
            ["--policy", "x.toml"],
            "Unknown flag --policy; To start the server, name it: helm-ai-kernel serve",
        ),
        (["serve", "--policy", "policy.yaml"], "invalid policy: policy.yaml must be a .toml file"),
        (["serve", "--policy", "missing.toml"], "invalid policy: cannot read missing.toml"),
        (["serve", "--policy", "p.toml", "--port", "http"], "argument --port: invalid int value"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = _serve(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_policy_toml_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('name = "x"\nprofile = "k"\n')
    result = _serve(tmp_path, "serve", "--policy", "p.toml")
    assert result.returncode == 2
    assert "invalid policy" in result.stderr and "reference_pack" in result.stderr


def test_production_without_root_key_refuses_naming_the_path(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy")
    data = tmp_path / "data"
    proc = RuntimeProcess(
        policy,
        data,
        env={**default_env(), "HELM_PRODUCTION": "1", "EVIDENCE_SIGNING_KEY": "ab" * 32},
    )
    with pytest.raises(RuntimeExited) as refused:
        proc.start()
    assert refused.value.returncode == 1
    assert (
        f"production mode requires root signing key to exist at {data / 'root.key'}"
        in refused.value.stderr
    )
    assert not (data / "root.key").exists(), "production must never generate key material"


def test_production_without_evidence_key_refuses(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy")
    data = tmp_path / "data"
    data.mkdir()
    (data / "root.key").write_text("11" * 32)
    with pytest.raises(RuntimeExited) as refused:
        RuntimeProcess(policy, data, env={**default_env(), "HELM_PRODUCTION": "true"}).start()
    assert refused.value.returncode == 1
    assert "EVIDENCE_SIGNING_KEY" in refused.value.stderr


@pytest.mark.parametrize(
    "url",
    ["postgresql://helm:pa ss-hunter2@db/helm", "postgresql://helm:hunter2%ZZ@db/helm",
     "host=db password='hunter2"],
)  # fmt: skip
def test_a_malformed_database_url_never_echoes_its_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(RuntimeExited) as refused:
        RuntimeProcess(
            write_policy(tmp_path / "policy"),
            tmp_path / "data",
            env={**default_env(), "DATABASE_URL": url},
        ).start()
    assert refused.value.returncode == 1
    assert "DATABASE_URL is not a PostgreSQL URL" in refused.value.stderr
    assert "hunter2" not in refused.value.stderr


def test_root_key_with_trailing_newline_is_refused_with_the_fix(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy")
    data = tmp_path / "data"
    data.mkdir()
    (data / "root.key").write_text("11" * 32 + "\n")
    with pytest.raises(RuntimeExited) as refused:
        RuntimeProcess(policy, data, env=default_env()).start()
    assert "ends with a newline" in refused.value.stderr


def test_unreconcilable_policy_exits_before_the_health_port_opens(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy", [{"action": "file_read", "expresion": "true"}])
    proc = RuntimeProcess(policy, tmp_path / "data", env=default_env())
    with pytest.raises(RuntimeExited) as refused:
        proc.start()
    assert refused.value.returncode == 1
    assert "reconcile initial policy snapshot: compile_error" in refused.value.stderr
    assert "expresion" in refused.value.stderr


def test_both_ports_serve_and_dev_mode_creates_the_key_pair(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RuntimeProcess(write_policy(tmp_path / "policy"), data, env=default_env()) as rt:
        for url in (f"{rt.health_url}/health", f"{rt.health_url}/healthz", f"{rt.url}/health"):
            response = httpx.get(url)
            assert (response.status_code, response.text) == (200, "OK"), url
        assert httpx.get(f"{rt.url}/healthz").json() == {"status": "ok", "version": "0.8.4"}
        denied = httpx.post(
            f"{rt.url}/api/v1/evaluate",
            headers=TENANT_HEADERS,
            json={
                "principal": "agent.smoke",
                "action": "EXECUTE_TOOL",
                "resource": "unknown.tool.kind",
                "context": {"session_id": "agent.smoke"},
            },
        ).json()
        assert (denied["verdict"], denied["reason_code"]) == ("DENY", "PDP_DENY")
    assert (data / "root.key").stat().st_mode & 0o777 == 0o600
    assert len((data / "root.pub").read_text().strip()) == 64
    assert (data / "helm.db").exists()


def test_acknowledged_receipts_survive_sigkill_and_restart(tmp_path: Path) -> None:
    """Concurrent load on shared sessions, SIGKILL mid-load: every 200 is on disk, chains intact."""
    policy = write_policy(tmp_path / "policy", ALLOW_FILE_READ)
    data = tmp_path / "data"
    rt = RuntimeProcess(policy, data, env=default_env()).start()
    acked: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 10  # bounded in time as well as count

    def client(worker: int) -> None:
        with httpx.Client(base_url=rt.url, headers=TENANT_HEADERS, timeout=5) as http:
            for i in range(400):
                if time.monotonic() > stop_at:
                    return
                body = {
                    "tool": "file_read",
                    "effect_level": "E1",
                    "session_id": f"s{i % 3}",
                    "args": {"path": "/etc/hostname", "w": worker},
                }
                try:
                    response = http.post("/api/v1/evaluate", json=body)
                except httpx.HTTPError:
                    return  # the server was killed under us
                if response.status_code == 200:
                    with lock:
                        acked.append(response.json()["receipt_id"])

    workers = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for worker in workers:
        worker.start()
    while len(acked) < 150 and time.monotonic() < stop_at:
        time.sleep(0.01)
    rt.kill()
    for worker in workers:
        worker.join(15)
    assert len(acked) >= 150, "load did not get going before the kill"

    with RuntimeProcess(policy, data, env=default_env()) as restarted:
        listed: list[dict[str, object]] = []
        cursor = ""
        with httpx.Client(base_url=restarted.url, headers=TENANT_HEADERS) as http:
            for _ in range(100):
                page = http.get(
                    "/api/v1/receipts",
                    params={"limit": 1000, "since": cursor} if cursor else {"limit": 1000},
                ).json()
                listed.extend(page["receipts"])
                if not page["has_more"]:
                    break
                cursor = page["next_cursor"]
    stored = {r["receipt_id"] for r in listed}
    lost = [rid for rid in acked if rid not in stored]
    assert lost == [], f"{len(lost)} acknowledged receipts lost after SIGKILL"
    public_key = (data / "root.pub").read_text().strip()
    report = verify_receipts(listed, public_key)
    assert report.ok, str(report)
    assert report.sessions == 3


def test_metrics_port_serves_prometheus_text(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from helm_runbook.standins.process import free_port

    metrics_port = free_port()
    env = {**default_env(), "HELM_METRICS_ENABLED": "1", "HELM_METRICS_PORT": str(metrics_port)}
    with RuntimeProcess(write_policy(tmp_path / "policy"), tmp_path / "data", env=env) as rt:
        httpx.post(
            f"{rt.url}/api/v1/evaluate",
            headers=TENANT_HEADERS,
            json={"tool": "t", "effect_level": "E1", "session_id": "m"},
        )
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert httpx.get(f"{rt.health_url}/metrics").status_code == 404  # not on the health port
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"helm_decisions", "helm_denials", "helm_chain_length", "process_cpu_seconds"} <= names


def test_the_serve_path_loads_no_cel_or_httpx_before_they_are_needed() -> None:
    """The cel package's __init__ also loads its interactive CLI (prompt_toolkit, rich, typer),
    httpx its CLI's (rich, pygments): 0.45 s of every pod start. cel loads when the first
    expression compiles, httpx with the proxy's first upstream call or a control-plane source."""
    probe = (
        "import sys, helm_runbook.runtime.server\n"
        "print(*(m in sys.modules for m in ('cel', 'prompt_toolkit', 'httpx', 'rich')))\n"
        "from helm_runbook.runtime.policy.compiler import compile_cel\n"
        "compile_cel('1 == 1')\n"
        "print('cel' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "False", "False", "False", "True"]


def test_sigterm_finishes_the_request_in_flight_and_keeps_its_receipt(tmp_path: Path) -> None:
    """Graceful shutdown: once SIGTERM has closed the listener, a request already on a connection
    is still answered 200, the process exits 0, and its receipt is stored."""
    policy, data = write_policy(tmp_path / "policy"), tmp_path / "data"
    body = json.dumps(
        {"action": "EXECUTE_TOOL", "resource": "unknown.tool.kind", "context": {"session_id": "t"}}
    ).encode()
    headers = "".join(f"{k}: {v}\r\n" for k, v in TENANT_HEADERS.items())
    rt = RuntimeProcess(policy, data, env=default_env()).start()
    assert rt.proc is not None
    with socket.create_connection(("127.0.0.1", rt.port), timeout=10) as conn:
        conn.sendall(
            f"POST /api/v1/evaluate HTTP/1.1\r\nHost: t\r\n{headers}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.3)  # let the server parse the head: the request is now in flight
        rt.proc.send_signal(signal.SIGTERM)
        for _ in range(500):  # bounded: 5 s
            try:
                socket.create_connection(("127.0.0.1", rt.port), timeout=1).close()
            except OSError:
                break  # the listener is closed: shutdown has begun
            time.sleep(0.01)
        else:
            pytest.fail("the API listener stayed open after SIGTERM")
        conn.sendall(body[10:])
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    receipt_id = json.loads(response.split(b"\r\n\r\n", 1)[1])["receipt_id"]
    assert rt.stop() == 0
    with RuntimeProcess(policy, data, env=default_env()) as restarted:
        listed = httpx.get(f"{restarted.url}/api/v1/receipts", headers=TENANT_HEADERS).json()
    assert [r["receipt_id"] for r in listed["receipts"]] == [receipt_id]


def test_a_websocket_upgrade_is_answered_as_plain_http(tmp_path: Path) -> None:
    """The contract has no WebSocket route: the server loads no WebSocket protocol (uvicorn's
    "auto" imports the websockets library at every start) and answers an upgrade as HTTP."""
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    with RuntimeProcess(
        write_policy(tmp_path / "policy"), tmp_path / "data", env=default_env()
    ) as rt:
        response = httpx.get(f"{rt.url}/health", headers=upgrade)
    assert (response.status_code, response.text) == (200, "OK")


def test_the_serve_path_loads_no_cli_reloader_or_unused_metrics_library() -> None:
    """What ``serve`` imports before readiness: not uvicorn's command line (click) or reloaders
    (watchfiles), nor prometheus_client with metrics off; uvicorn's names still resolve."""
    script = (
        "import sys\n"
        "from helm_runbook.runtime.cli import defer_uvicorn_cli\n"
        "defer_uvicorn_cli()\n"
        "import helm_runbook.runtime.server\n"
        "print(sorted(m for m in ('click', 'watchfiles', 'prometheus_client') if m in sys.modules))\n"
        "import uvicorn\n"
        "print(uvicorn.run.__module__, uvicorn.Config.__module__, 'click' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()  # fmt: skip
    assert out == ["[]", "uvicorn.main uvicorn.config True"]
