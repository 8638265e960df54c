"""The scrape job is derived from the rendered ServiceMonitor and Service (never hand-written),
and a broken link between them is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.sdk import render
from helm_runbook.errors import StepFailed
from helm_runbook.standins.observability import duration_seconds, scrape_job

METRICS = {"helm": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True, "interval": "2s",
                                                                    "labels": {"release": "kube-prom"}}}}}  # fmt: skip


@pytest.fixture(scope="module")
def release() -> RenderedRelease:
    return render(CHART_DIR, METRICS, release="obs", namespace="team-a")


def _edited(release: RenderedRelease, kind: str, edit: Any) -> RenderedRelease:
    objects = copy.deepcopy(release.objects)
    for _, obj in objects:
        if obj["kind"] == kind:
            edit(obj)
    return RenderedRelease(
        release.release, release.namespace, objects, release.notes, release.values
    )


def test_the_job_follows_the_servicemonitor_through_the_service(release: RenderedRelease) -> None:
    job = scrape_job(release)
    assert (job.name, job.service, job.namespace) == (
        "serviceMonitor/team-a/obs-helm-ai-kernel/0",
        "obs-helm-ai-kernel",
        "team-a",
    )
    assert (job.endpoint_port, job.container_port, job.path, job.interval) == (
        "metrics",
        "metrics",
        "/metrics",
        "2s",
    )
    assert job.monitor_labels["release"] == "kube-prom"
    config = job.config("127.0.0.1:9999", "obs-0")
    [scrape] = config["scrape_configs"]
    assert scrape["scrape_interval"] == "2s" and scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"] == [{"targets": ["127.0.0.1:9999"], "labels": {
        "job": "obs-helm-ai-kernel", "namespace": "team-a", "service": "obs-helm-ai-kernel",
        "endpoint": "metrics", "pod": "obs-0"}}]  # fmt: skip
    assert job.selector_promql == '{job="obs-helm-ai-kernel",namespace="team-a",endpoint="metrics"}'


def test_the_interval_comes_from_the_values() -> None:
    values = copy.deepcopy(METRICS)
    values["helm"]["metrics"]["serviceMonitor"]["interval"] = "15s"
    assert (
        scrape_job(render(CHART_DIR, values, release="obs")).config("a:1", "p")["global"][
            "scrape_interval"
        ]
        == "15s"
    )


def test_without_a_servicemonitor_the_fix_names_the_values() -> None:
    with pytest.raises(StepFailed, match=r"serviceMonitor.enabled=true"):
        scrape_job(render(CHART_DIR, {}, release="obs"))


def test_a_port_name_mismatch_is_named(release: RenderedRelease) -> None:
    broken = _edited(
        release, "ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(port="prom")
    )
    with pytest.raises(StepFailed, match=r"port named 'prom'.*\['health', 'http', 'metrics'\]"):
        scrape_job(broken)


def test_a_selector_matching_no_service_is_named(release: RenderedRelease) -> None:
    broken = _edited(
        release,
        "ServiceMonitor",
        lambda o: o["spec"]["selector"].update(matchLabels={"app": "other"}),
    )
    with pytest.raises(StepFailed, match=r"0 Services labelled \{'app': 'other'\}"):
        scrape_job(broken)


def test_a_target_port_no_container_serves_is_named(release: RenderedRelease) -> None:
    def retarget(service: dict[str, Any]) -> None:
        for port in service["spec"]["ports"]:
            if port["name"] == "metrics":
                port["targetPort"] = "metricz"

    with pytest.raises(StepFailed, match=r"targetPort 'metricz' is no port"):
        scrape_job(_edited(release, "Service", retarget))


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200)]
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "-1s", "0s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_seconds(text)


def test_the_newest_successful_scrape_is_read_among_stale_series() -> None:
    """After a pod or Prometheus restart the old pod's series stay visible (lookback) beside the
    new one's: the last scrape and the target the burst is read from are the newest with up 1."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    from helm_runbook.standins.observability import PromQL

    sel = '{job="helm",namespace="default",endpoint="metrics"}'
    old = {
        "job": "helm",
        "namespace": "default",
        "endpoint": "metrics",
        "instance": "127.0.0.1:1001",
    }
    new = {**old, "instance": "127.0.0.1:1002"}
    broken = {**old, "instance": "127.0.0.1:1003"}
    answers = {  # the stale series first, as Prometheus orders them by labels
        f"up{sel}": [({**old, "__name__": "up"}, 1), ({**new, "__name__": "up"}, 1), ({**broken, "__name__": "up"}, 0)],
        f"timestamp(up{sel})": [(old, 100.0), (new, 200.0), (broken, 300.0)],
    }  # fmt: skip

    class API(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)["query"][0]
            result = [{"metric": m, "value": [0, str(v)]} for m, v in answers.get(query, [])]
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            )
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), API)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        promql = PromQL(f"http://127.0.0.1:{server.server_address[1]}")
        assert promql.last_scrape(sel) == 200.0
        assert promql.newest_target(sel) == sel[:-1] + ',instance="127.0.0.1:1002"}'
        assert promql.wait_scrape_after(sel, 150.0, 1.0) == 200.0
    finally:
        server.shutdown()
        server.server_close()
        server.server_close()


def test_prometheus_ready_wait_rereads_its_url_until_the_child_has_exec_d(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Just after Popen the state file's pid is not Prometheus yet (the child has not exec'd):
    the wait must look again, not settle on "no URL" for its whole timeout (a flake in 09)."""
    import http.server
    import subprocess
    import threading

    from helm_runbook.standins import observability

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/-/ready" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    child = subprocess.Popen(["sleep", "30"])
    calls = iter([False, False, False])
    monkeypatch.setattr(observability, "_is_prometheus", lambda pid: next(calls, pid == child.pid))
    monkeypatch.setattr(observability, "READY_TIMEOUT_S", 3.0)
    try:
        prometheus = observability.LocalPrometheus(tmp_path)
        prometheus.home.mkdir(parents=True)
        prometheus.state_file.write_text(json.dumps({"pid": child.pid, "port": server.server_port}))
        assert prometheus._ready(child) == f"http://127.0.0.1:{server.server_port}"
    finally:
        child.kill()
        child.wait()
        server.shutdown()
        server.server_close()


def test_a_running_prometheus_is_reloaded_only_when_its_job_changes(
    tmp_path: Path, release: RenderedRelease, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started before the release has a ServiceMonitor it runs with no job; the job's arrival
    reloads it, the same job again does not (a reload waits for Prometheus's next 5 s tick)."""
    import yaml

    from helm_runbook.standins import observability

    prometheus = observability.LocalPrometheus(tmp_path)
    monkeypatch.setattr(observability.shutil, "which", lambda name: "/usr/bin/prometheus")
    monkeypatch.setattr(observability.LocalPrometheus, "url", "http://127.0.0.1:9")
    monkeypatch.setattr(observability.LocalPrometheus, "_ready", lambda self, process=None: "ok")
    reloads: list[int] = []
    monkeypatch.setattr(observability.LocalPrometheus, "reload", lambda self: reloads.append(1))
    prometheus.start(None)
    assert yaml.safe_load(prometheus.config_file.read_text())["scrape_configs"] == []
    job = scrape_job(release)
    prometheus.start(job, "127.0.0.1:9100", "obs-0")
    prometheus.start(job, "127.0.0.1:9100", "obs-0")
    assert len(reloads) == 2  # the no-job config, then the job: the unchanged one is not sent
    [scrape] = yaml.safe_load(prometheus.config_file.read_text())["scrape_configs"]
    assert scrape["job_name"] == job.name and scrape["static_configs"][0]["targets"] == [
        "127.0.0.1:9100"
    ]
    prometheus.start(job, "127.0.0.1:9200", "obs-1")  # a new pod: its address
    assert len(reloads) == 3
