"""nginx configured from the rendered Ingress: hosts, paths, the backend Service port, the TLS
Secret's certificate; a missing or wrong TLS Secret is named; https by host name works for real."""

from __future__ import annotations

import http.server
import shutil
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.sdk import render
from helm_runbook.errors import StepFailed
from helm_runbook.standins.ingress import (
    LocalIngress,
    backend_address,
    ingress_plan,
    nginx_config,
    tls_pair,
)
from helm_runbook.steps.observability import self_signed


def _values(tls: bool = True, path: str = "/", path_type: str = "Prefix") -> dict[str, Any]:
    ingress: dict[str, Any] = {"enabled": True, "hosts": [
        {"host": "api.example.test", "paths": [{"path": path, "pathType": path_type}]},
        {"host": "plain.example.test", "paths": [{"path": "/", "pathType": "Prefix"}]}]}  # fmt: skip
    if tls:
        ingress["tls"] = [{"secretName": "api-tls", "hosts": ["api.example.test"]}]
    return {"ingress": ingress}


@pytest.fixture(scope="module")
def release() -> RenderedRelease:
    return render(CHART_DIR, _values(), release="edge")


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return self_signed(["api.example.test"])


def test_the_config_follows_the_ingress(release: RenderedRelease, tmp_path: Path) -> None:
    plan = ingress_plan(release)
    assert plan is not None and plan.tls_hosts == {"api.example.test": "api-tls"}
    backends = {route: backend_address(release, route, {"http": 4321}) for route in plan.routes}
    assert set(backends.values()) == {"127.0.0.1:4321"}  # Service port http -> targetPort http
    conf = nginx_config(plan, tmp_path, backends=backends, certs={"api-tls": (tmp_path / "c", tmp_path / "k")},
                        https_port=8443, http_port=8080)  # fmt: skip
    api, plain = (
        conf.split("server_name api.example.test;")[0],
        conf.split("server_name plain.example.test;")[0],
    )
    assert "listen 127.0.0.1:8443 ssl;" in api.rsplit("server {", 1)[1]
    assert "listen 127.0.0.1:8080;" in plain.rsplit("server {", 1)[1]
    assert (
        f"ssl_certificate_key {tmp_path / 'k'};" in conf
        and "proxy_pass http://127.0.0.1:4321;" in conf
    )
    assert "return 404;" in conf


def test_exact_paths_become_exact_locations(tmp_path: Path) -> None:
    release = render(CHART_DIR, _values(path="/api/v1/evaluate", path_type="Exact"), release="edge")
    plan = ingress_plan(release)
    assert plan is not None
    backends = {route: "127.0.0.1:1" for route in plan.routes}
    conf = nginx_config(plan, tmp_path, backends=backends, certs={"api-tls": (tmp_path / "c", tmp_path / "k")},
                        https_port=1, http_port=2)  # fmt: skip
    assert "location = /api/v1/evaluate {" in conf


def test_a_path_that_would_inject_configuration_is_refused(release: RenderedRelease) -> None:
    objects = [(s, {**o, "spec": {**o["spec"], "rules": [{"host": "a.test", "http": {"paths": [
        {"path": "/ { return 200; }", "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"name": "http"}}}}]}}]}})
        if o["kind"] == "Ingress" else (s, o) for s, o in release.objects]  # fmt: skip
    with pytest.raises(StepFailed, match="a valid Ingress path"):
        ingress_plan(RenderedRelease("edge", "default", objects, "", {}))


def test_a_missing_tls_secret_is_named(release: RenderedRelease, tmp_path: Path) -> None:
    with pytest.raises(
        StepFailed, match=r"(?s)no Secret 'api-tls'.*kubectl create secret tls api-tls"
    ):
        LocalIngress(tmp_path).start(release, {}, {"http": 1})


def test_an_invalid_tls_secret_is_named(pair: tuple[bytes, bytes]) -> None:
    with pytest.raises(StepFailed, match=r"Secret api-tls with tls.crt and tls.key"):
        tls_pair({"api-tls": {"tls.crt": pair[0]}}, "api-tls")
    with pytest.raises(StepFailed, match=r"Secret api-tls holding a PEM"):
        tls_pair({"api-tls": {"tls.crt": b"junk", "tls.key": pair[1]}}, "api-tls")
    other = self_signed(["api.example.test"])
    with pytest.raises(StepFailed, match=r"tls.key matching its tls.crt"):
        tls_pair({"api-tls": {"tls.crt": pair[0], "tls.key": other[1]}}, "api-tls")
    with pytest.raises(StepFailed, match=r"naming other.test"):
        tls_pair({"api-tls": {"tls.crt": pair[0], "tls.key": pair[1]}}, "api-tls", ("other.test",))


@pytest.fixture
def backend() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{self.path} host={self.headers['Host']} proto={self.headers['X-Forwarded-Proto']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="needs Debian's nginx (make system-deps)",
)
def test_nginx_serves_https_by_host_name(release: RenderedRelease, pair: tuple[bytes, bytes], backend: int,
                                        tmp_path: Path) -> None:  # fmt: skip
    ingress = LocalIngress(tmp_path)
    state = ingress.start(
        release, {"api-tls": {"tls.crt": pair[0], "tls.key": pair[1]}}, {"http": backend}
    )
    try:
        assert (
            stat.S_IMODE((tmp_path / "ingress" / "tls" / "api-tls" / "tls.key").stat().st_mode)
            == 0o600
        )
        context = ssl.create_default_context(cadata=pair[0].decode())
        base = f"https://127.0.0.1:{state['https_port']}"
        with httpx.Client(verify=context, timeout=5) as client:
            r = client.get(
                base + "/health",
                headers={"Host": "api.example.test"},
                extensions={"sni_hostname": "api.example.test"},
            )
            assert r.text == "/health host=api.example.test proto=https"
            unknown = client.get(
                base + "/health",
                headers={"Host": "nobody.test"},
                extensions={"sni_hostname": "api.example.test"},
            )
            assert unknown.status_code == 404
        with (
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
            httpx.Client(timeout=5) as plain,
        ):
            plain.get(
                base + "/health",
                headers={"Host": "api.example.test"},
                extensions={"sni_hostname": "api.example.test"},
            )
        r = httpx.get(
            f"http://127.0.0.1:{state['http_port']}/x",
            headers={"Host": "plain.example.test"},
            timeout=5,
        )
        assert r.text == "/x host=plain.example.test proto=http"
    finally:
        ingress.stop()
    assert ingress.state() == {}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{state['http_port']}/x", timeout=2)
