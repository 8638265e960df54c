"""One resolution order for the target, the same in ``helm-runbook run``, ``make runbook``,
papermill and JupyterLab: an explicit ``--target`` > the run profile's > local. And a cluster that
cannot be reached fails in seconds with exit 3, naming the context, the server and what to check.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from helm_runbook import runner
from helm_runbook.cli import main
from helm_runbook.errors import TargetUnavailable
from helm_runbook.targets import reach
from tests.conftest import free_port
from tests.kube_emulator import BackgroundKmock, write_kubeconfig


def _build_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"BUILD": tmp_path, "EXECUTED": tmp_path / "runbooks", "WORKDIR": tmp_path / "local-target",
                        "REPORT": tmp_path / "runbook-report.json"}.items():  # fmt: skip
        monkeypatch.setattr(runner, name, value)


def _profile(tmp_path: Path, **settings: str) -> Path:
    path = tmp_path / "profile.yaml"  # beside the workdir: the runner's profile
    path.write_text(yaml.safe_dump(settings))
    return path


def test_the_runner_takes_the_profiles_target_when_none_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: ``target: prod-eu`` in the profile, ``helm-runbook run 04`` ran locally."""
    _build_in(tmp_path, monkeypatch)
    _profile(tmp_path, target="prod-eu")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    ran: list[dict[str, object]] = []

    def execute(notebook: Path, **kwargs: object) -> dict[str, object]:
        ran.append(kwargs)
        return {"notebook": notebook.stem, "status": "passed", "duration_s": 0.1, "steps": [],
                "failure": None, "executed": notebook.name}  # fmt: skip

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "run_metadata", lambda target: {"target": target})
    assert main(["run", "04"]) == 3  # prod-eu, not local: its kubeconfig is missing
    err = capsys.readouterr().err
    assert "kube context 'prod-eu'" in err and str(tmp_path / "no-such-kubeconfig") in err
    assert "KUBECONFIG" in err and ran == []
    # an explicit --target wins over the profile; without one, no target parameter is injected
    assert main(["run", "4", "--target", "local"]) == 0
    assert ran[-1]["target"] == "local"
    _profile(tmp_path, target="local")
    assert main(["run", "04"]) == 0
    assert ran[-1]["target"] == ""  # the notebook resolves it from the profile, as in JupyterLab
    assert runner.request_from(runner.build_parser().parse_args(["04"])).target == ""


@pytest.mark.notebooks
def test_runbook_02_goes_where_the_profile_says_and_where_target_overrides_it(
    emulator: BackgroundKmock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real notebook runs: the profile names the emulated context, so ``run 02`` creates the
    Secrets there; ``--target local`` creates them on the local target instead, and the failed
    ``--target wrongctx`` run leaves the profile as the last successful one wrote it."""
    _build_in(tmp_path, monkeypatch)
    monkeypatch.setenv(
        "KUBECONFIG", str(write_kubeconfig(emulator.url, tmp_path / "kc", namespace="ops"))
    )
    _profile(tmp_path, target="emulated", namespace="from-profile", release="acme-gw")
    runner.run(runner.RunRequest(("02",), docs=False), via=runner.CLI_RUN)
    with client.ApiClient(client.Configuration(host=emulator.url)) as api:
        names = {
            s.metadata.name
            for s in client.CoreV1Api(api).list_namespaced_secret("from-profile").items
        }
    assert {"helm-signing", "helm-auth"} <= names
    assert not (tmp_path / "local-target" / "state.json").exists()

    runner.run(runner.RunRequest(("02",), target="local", docs=False), via=runner.CLI_RUN)
    assert (tmp_path / "local-target" / "state.json").exists()
    saved = yaml.safe_load((tmp_path / "profile.yaml").read_text())
    assert (saved["target"], saved["release"]) == ("local", "acme-gw")  # 02 saved what it used

    with pytest.raises(TargetUnavailable):
        runner.run(runner.RunRequest(("02",), target="wrongctx", docs=False), via=runner.CLI_RUN)
    assert yaml.safe_load((tmp_path / "profile.yaml").read_text()) == saved


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.mark.parametrize("server", ["closed", "hanging"])
def test_an_unreachable_api_server_exits_3_within_10_seconds(
    server: str, hanging_port: int, tmp_path: Path
) -> None:
    port = free_port() if server == "closed" else hanging_port
    url = f"http://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(url, tmp_path / "kubeconfig", context="prod-eu")
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig)}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "helm_runbook.cli", "run", "04", "--target", "prod-eu"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    took = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 2, result.stderr
    assert lines[0].startswith("error: kube context 'prod-eu'") and url in lines[0], lines
    assert lines[1].startswith("fix: ") and "cluster-info" in lines[1], lines
    assert took < 10, f"{took:.1f}s"


class _Answer(BaseHTTPRequestHandler):
    status = 401

    def do_GET(self) -> None:
        body = b'{"kind":"Status","code":%d}' % self.status
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_target_unavailable_naming_the_context(
    status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = type("Answer", (_Answer,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(url, tmp_path / "kc", context="c")))
        with pytest.raises(TargetUnavailable) as caught:
            reach("c/ns")
        assert f"answered {status}" in caught.value.message and url in caught.value.message
        assert "credentials" in caught.value.message
        assert ("auth whoami" if status == 401 else "auth can-i --list") in caught.value.fix
        # TLS to a server that speaks plain HTTP: a TLS failure, named as such
        tls = f"https://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tls, tmp_path / "kc2", context="c")))
        with pytest.raises(TargetUnavailable) as broken:
            reach("c")
        assert tls in broken.value.message and "kubectl --context c" in broken.value.fix
    finally:
        server.shutdown()
        server.server_close()


def test_a_missing_kubeconfig_names_every_path_tried_and_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    with pytest.raises(TargetUnavailable) as caught:
        reach("prod")
    assert str(first) in caught.value.message and str(second) in caught.value.message
    assert "KUBECONFIG" in caught.value.message and "KUBECONFIG" in caught.value.fix
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(TargetUnavailable, match=str(tmp_path / ".kube" / "config")):
        reach("prod")


def test_an_api_server_gone_mid_run_is_target_unavailable_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call through the kube target's client, not only the first: the server answered
    when the context was opened, then went away."""
    from helm_runbook.targets.kube import connect

    handler = type("Answer", (_Answer,), {"status": 404})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(url, tmp_path / "kc", context="c")))
    api = connect("c")  # reachable: it answered (404 for discovery is an answer)
    server.shutdown()
    server.server_close()
    start = time.monotonic()
    with pytest.raises(TargetUnavailable) as caught:
        client.CoreV1Api(api).read_namespaced_secret("helm-auth", "ops")
    assert url in caught.value.message and "cluster-info" in caught.value.fix
    assert time.monotonic() - start < 20  # one connect retry, not the client's default backoff
    api.close()
