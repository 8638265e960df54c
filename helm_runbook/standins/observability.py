"""Prometheus for a release: the scrape job derived from its rendered ServiceMonitor and Service,
a real Prometheus server for the local target, and bounded PromQL over its HTTP API.

prometheus-operator turns a ServiceMonitor into a scrape job: the ServiceMonitor's selector picks
the Service, the endpoint's ``port`` names one of the Service's ports, whose ``targetPort`` names
a container port of the selected pods; ``path`` and ``interval`` come from the endpoint. The local
Prometheus gets exactly that job, with the pod's forwarded 127.0.0.1 port as its target and the
operator's target labels (``job`` = the Service, ``namespace``, ``service``, ``endpoint``, ``pod``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.standins.process import free_port

MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a PromQL answer larger than this is refused, not parsed
QUERY_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
SCRAPE_POLL_S = 0.05  # two local PromQL queries per poll


@dataclass(frozen=True)
class ScrapeJob:
    """One ServiceMonitor endpoint resolved through its Service to a container port."""

    name: str  # serviceMonitor/<namespace>/<name>/<endpoint index>, as the operator names it
    namespace: str
    service: str
    endpoint_port: str  # the Service port's name the ServiceMonitor endpoint names
    container_port: str  # the container port that Service port targets
    path: str
    interval: str
    selector: dict[str, str] = field(default_factory=dict)
    monitor_labels: dict[str, str] = field(default_factory=dict)  # what Prometheus selects on

    @property
    def selector_promql(self) -> str:
        """The PromQL label selector of this job's target, as the operator labels it."""
        return (
            f'{{job="{self.service}",namespace="{self.namespace}",endpoint="{self.endpoint_port}"}}'
        )

    @property
    def interval_s(self) -> float:
        return duration_seconds(self.interval)

    def config(self, address: str, pod: str) -> dict[str, Any]:
        """Prometheus's configuration with this job scraping ``address`` (host:port)."""
        labels = {"job": self.service, "namespace": self.namespace, "service": self.service,
                  "endpoint": self.endpoint_port, "pod": pod}  # fmt: skip
        return {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [
                {
                    "job_name": self.name,
                    "scrape_interval": self.interval,
                    "scrape_timeout": self.interval if self.interval_s < 10 else "10s",
                    "metrics_path": self.path,
                    "static_configs": [{"targets": [address], "labels": labels}],
                }
            ],
        }


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``5s``, ``1m``, ``1m30s``) in seconds; ValueError when malformed."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total, number, rest = 0.0, "", str(text)
    while rest:
        if rest[0].isdigit():
            number, rest = number + rest[0], rest[1:]
            continue
        unit = "ms" if rest.startswith("ms") else rest[0]
        if unit not in units or not number:
            raise ValueError(f"not a Prometheus duration: {text!r}")
        total, number, rest = total + int(number) * units[unit], "", rest[len(unit) :]
    if number or total <= 0:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def scrape_job(release: RenderedRelease) -> ScrapeJob:
    """The scrape job a prometheus-operator derives from the release's ServiceMonitor; StepFailed
    naming the broken link (no ServiceMonitor, no selected Service, an unknown port name)."""
    step = "metrics.servicemonitor"
    monitors = release.of_kind("ServiceMonitor")
    if not monitors:
        raise StepFailed(step, expected="a rendered ServiceMonitor", seen="none in the release",
                         fix="install with helm.metrics.enabled=true and "
                             "helm.metrics.serviceMonitor.enabled=true")  # fmt: skip
    monitor = monitors[0]
    name = monitor["metadata"]["name"]
    selector = dict((monitor["spec"].get("selector") or {}).get("matchLabels") or {})
    services = [s for s in release.of_kind("Service")
                if selector and selector.items() <= (s["metadata"].get("labels") or {}).items()]  # fmt: skip
    if len(services) != 1:
        raise StepFailed(step, expected=f"ServiceMonitor {name} selecting exactly one Service",
                         seen=f"{len(services)} Services labelled {selector}",
                         fix="make the ServiceMonitor's selector.matchLabels the Service's labels")  # fmt: skip
    service = services[0]
    endpoints = monitor["spec"].get("endpoints") or []
    if not endpoints:
        raise StepFailed(step, expected=f"ServiceMonitor {name} with an endpoint",
                         seen="spec.endpoints is empty", fix="declare the metrics endpoint")  # fmt: skip
    endpoint = endpoints[0]
    ports = {p.get("name"): p for p in service["spec"].get("ports", [])}
    port_name = str(endpoint.get("port", ""))
    if port_name not in ports:
        raise StepFailed(step, expected=f"Service {service['metadata']['name']} with a port named {port_name!r}",
                         seen=f"its ports are {sorted(n for n in ports if n)}",
                         fix="name the metrics port the same in the Service and the ServiceMonitor endpoint "
                             "(helm.metrics.enabled adds the Service's metrics port)")  # fmt: skip
    target = ports[port_name].get("targetPort", ports[port_name].get("port"))
    container = _container_port(release, target)
    if container is None:
        raise StepFailed(step, expected=f"Service port {port_name} targeting a container port",
                         seen=f"targetPort {target!r} is no port of the Deployment's container",
                         fix="target the container's metrics port by name (targetPort: metrics)")  # fmt: skip
    interval = str(endpoint.get("interval") or "30s")
    try:
        duration_seconds(interval)
    except ValueError as exc:
        raise StepFailed(step, expected="a Prometheus duration as the endpoint interval", seen=str(exc),
                         fix="set helm.metrics.serviceMonitor.interval to e.g. 5s or 30s") from exc  # fmt: skip
    return ScrapeJob(
        name=f"serviceMonitor/{release.namespace}/{name}/0", namespace=release.namespace,
        service=service["metadata"]["name"], endpoint_port=port_name, container_port=container,
        path=str(endpoint.get("path") or "/metrics"), interval=interval, selector=selector,
        monitor_labels=dict(monitor["metadata"].get("labels") or {}),
    )  # fmt: skip


def _container_port(release: RenderedRelease, target: object) -> str | None:
    """The name of the Deployment container port a Service ``targetPort`` (name or number) hits."""
    container = release.get("Deployment")["spec"]["template"]["spec"]["containers"][0]
    for port in container.get("ports", []):
        if target in (port.get("name"), port.get("containerPort")):
            return str(port.get("name"))
    return None


# -- a Prometheus server on this machine (the local target's monitoring stack) -----------------


class LocalPrometheus:
    """Debian's ``prometheus`` bound to 127.0.0.1, configuration and TSDB under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.home = workdir.resolve() / "prometheus"
        self.state_file = self.home / "state.json"

    def _state(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(self.state_file.read_text())
            if isinstance(state, dict) and _is_prometheus(int(state.get("pid", 0))):
                return state
        return {}

    @property
    def pid(self) -> int:
        """The running server's pid, 0 when none runs."""
        return int(self._state().get("pid", 0))

    @property
    def url(self) -> str | None:
        state = self._state()
        return f"http://127.0.0.1:{state['port']}" if state else None

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    def write_config(self, job: ScrapeJob | None, address: str = "", pod: str = "") -> bool:
        """Write the configuration: ``job`` scraping ``address``, or no job yet. True if it changed."""
        owner_only_dir(self.home)
        if job is None:
            text = "# no ServiceMonitor yet: the release's upgrade adds its job\n" + yaml.safe_dump(
                {"global": {}, "scrape_configs": []}, sort_keys=False
            )
        else:
            header = f"# derived from the release's ServiceMonitor {job.name} (monitor labels {job.monitor_labels})\n"
            text = header + yaml.safe_dump(job.config(address, pod), sort_keys=False)
        with contextlib.suppress(OSError):
            if self.config_file.read_text() == text:
                return False
        write_private(self.config_file, text)
        return True

    def start(self, job: ScrapeJob | None, address: str = "", pod: str = "") -> str:
        """Start (or reconfigure) the server; returns its URL once ``/-/ready`` answers.

        Without a job it runs with none yet: Prometheus hands targets to its scrape manager only on
        a fixed 5 s tick counted from its start, so a server started before the release's
        ServiceMonitor exists scrapes it that much sooner. An unchanged configuration is not
        reloaded (a reload would only wait for the next tick again)."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise TargetUnavailable("the local target's monitoring needs Prometheus",
                                    fix="apt-get install -y prometheus (make system-deps installs it)")  # fmt: skip
        changed = self.write_config(job, address, pod)
        config = self.config_file
        if self.url:
            if changed:
                self.reload()
            return self._ready()
        port = free_port()
        data = owner_only_dir(self.home / "data")
        log = self.home / "prometheus.log"
        with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d",
                 "--log.level=warn"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home,
            )  # fmt: skip
        write_private(self.state_file, json.dumps({"pid": process.pid, "port": port}))
        return self._ready(process)

    def _ready(self, process: subprocess.Popen[bytes] | None = None) -> str:
        url = ""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                break
            # read each time: just after Popen the child may not have exec'd prometheus yet, and
            # the state file names a pid that is not Prometheus until it has
            url = self.url or ""
            with contextlib.suppress(httpx.HTTPError):
                if (
                    url
                    and httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200
                ):
                    return url
            time.sleep(0.1)
        log = (self.home / "prometheus.log").read_text(errors="replace")[-600:]
        code = process.poll() if process is not None else None
        seen = f"{'exit ' + str(code) if code is not None else 'running'} at {url or 'no URL'}: {log or 'no output'}"
        raise StepFailed("metrics.prometheus", expected=f"Prometheus ready within {READY_TIMEOUT_S:g}s",
                         seen=seen, fix="read the log above (a port in use, a bad config)")  # fmt: skip

    def reload(self) -> None:
        """SIGHUP: Prometheus re-reads its configuration (a new pod's forwarded port)."""
        pid = int(self._state().get("pid", 0))
        if pid:
            os.kill(pid, signal.SIGHUP)

    def stop(self) -> None:
        pid = int(self._state().get("pid", 0))
        if pid:
            terminate(pid, _is_prometheus)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()


def _is_prometheus(pid: int) -> bool:
    return cmdline_has(pid, b"prometheus")


def cmdline_has(pid: int, word: bytes) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return pid > 0 and word in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, IndexError):
        return False


def terminate(pid: int, still: Any, timeout: float = 10.0) -> None:
    """SIGTERM ``pid`` (only while ``still(pid)`` says it is ours), SIGKILL after ``timeout``."""
    if not still(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while still(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if still(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def owner_only_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


# -- PromQL over the HTTP API ------------------------------------------------------------------


class PromQL:
    """Instant and range queries against a Prometheus HTTP API, bounded in size and time.

    One client for every query (``with PromQL(url) as promql``): a new one per query loads the
    CA bundle and connects again, about 30 ms each, and the waits poll twice per period."""

    def __init__(self, url: str, *, timeout: float = QUERY_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PromQL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            with self._client.stream("GET", f"{self.url}{path}", params=params) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise StepFailed("metrics.promql", expected=f"an answer under {MAX_RESPONSE_BYTES} bytes",
                                         seen=f"more from {path} {params.get('query', '')}",
                                         fix="narrow the query (labels, a shorter range)")  # fmt: skip
        except httpx.HTTPError as exc:
            raise TargetUnavailable(f"cannot reach Prometheus at {self.url}: {exc}",
                                    fix="check the Prometheus URL (its API, e.g. http://prometheus:9090)") from exc  # fmt: skip
        doc = json.loads(bytes(body))
        if r.status_code != 200 or doc.get("status") != "success":
            raise StepFailed("metrics.promql", expected=f"200 success for {params.get('query', path)}",
                             seen=f"{r.status_code} {doc.get('error', '')[:200]}", fix="check the query")  # fmt: skip
        return doc["data"]

    def vector(self, query: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series."""
        params = {"query": query, **({"time": f"{at:.3f}"} if at is not None else {})}
        data = self._get("/api/v1/query", params)
        if data.get("resultType") == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data.get("result", [])]

    def scalar(self, query: str, at: float | None = None, default: float = 0.0) -> float:
        series = self.vector(query, at)
        return series[0][1] if series else default

    def matrix(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self._get("/api/v1/query_range", params)
        return [(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
                for item in data.get("result", [])]  # fmt: skip

    def last_scrape(self, selector: str) -> float:
        """Unix time of the newest successful scrape (``up`` 1) of the targets ``selector`` picks
        (0 if none). The newest of all: a restarted pod or Prometheus leaves the old pod's series
        visible for the 5-minute lookback, beside the new one."""
        return max((stamp for _, stamp in self._scraped(selector)), default=0.0)

    def _scraped(
        self, selector: str, at: float | None = None
    ) -> list[tuple[dict[str, str], float]]:
        """(labels, time of the last scrape) of each target ``selector`` picks whose ``up`` is 1.
        ``timestamp()`` only gives sample times applied to a selector itself (over ``up == 1``
        it gives the query's time), so the filter on ``up`` happens here."""

        def key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
            return frozenset((k, v) for k, v in labels.items() if k != "__name__")

        up = {key(labels): value for labels, value in self.vector(f"up{selector}", at)}
        return [(labels, stamp) for labels, stamp in self.vector(f"timestamp(up{selector})", at)
                if up.get(key(labels)) == 1.0]  # fmt: skip

    def newest_target(self, selector: str, at: float | None = None) -> str:
        """``selector`` narrowed to the target scraped successfully last (its ``instance``): a
        restarted pod's old series stay visible beside the new one's for the lookback, and a
        counter read from the old one would not move."""
        series = self._scraped(selector, at)
        instance = max(series, key=lambda s: s[1])[0].get("instance") if series else None
        return f'{selector[:-1]},instance="{instance}"}}' if instance else selector

    def wait_scrape_after(self, selector: str, after: float, timeout: float) -> float:
        """Block until Prometheus has scraped ``selector``'s target successfully after ``after``
        (unix time), polling every ``SCRAPE_POLL_S`` (well under a scrape interval)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.last_scrape(selector)
            if seen > after:
                return seen
            time.sleep(SCRAPE_POLL_S)
        up = self.scalar(f"up{selector}", default=-1)
        raise StepFailed("metrics.scrape", expected=f"a successful scrape of up{selector} within {timeout:g}s",
                         seen=f"up={up:g}, last scrape at {self.last_scrape(selector):.0f}",
                         fix="check the ServiceMonitor's port and path against the Service and the "
                             "runtime's metrics port (diagnose() names a mismatch)")  # fmt: skip
