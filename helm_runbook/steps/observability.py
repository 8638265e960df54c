"""Observability and ingress steps: the release's metrics scraped by a real Prometheus (the
scrape job derived from its ServiceMonitor), a governed burst whose PromQL figures must equal the
receipts written, a chart of it, and https through the release's Ingress with a self-signed CA."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import shlex
import threading
import time
from collections import Counter
from typing import Any

from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.values import helm_command
from helm_runbook.errors import InputError, StepFailed, TargetUnavailable
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport, progress
from helm_runbook.standins.ingress import ingress_plan, tls_pair
from helm_runbook.standins.observability import PromQL, ScrapeJob, scrape_job
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient

MAX_BURST = 2000  # requests: the burst is a demonstration, not a load test (benchmarks/ has those)
QUANTILES = (0.5, 0.9, 0.99)
_CHART_IMPORT = threading.Lock()  # matplotlib.use must not race a concurrent first import


def _release(target: Target) -> RenderedRelease:
    release = getattr(target, "release", None)
    rendered = (
        release if isinstance(release, RenderedRelease) else getattr(target, "rendered", None)
    )
    if not isinstance(rendered, RenderedRelease):
        raise InputError("no rendered release known for this target",
                         fix="run the upgrade step of runbook 09-observability-ingress first (it renders and applies the release)")  # fmt: skip
    return rendered


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def upgrade_reusing_values(
    target: Target, changes: dict[str, Any], *, base: dict[str, Any] | None = None,
    release: str = "helm-ai-kernel", timeout: float = 60.0,
) -> StepReport:  # fmt: skip
    """``helm upgrade --reuse-values`` with ``changes``: the installed values (or ``base``) with
    ``changes`` merged in, applied, rolled out."""
    start = time.perf_counter()
    installed = getattr(target, "release", None)
    values = (
        base
        if base is not None
        else (installed.values if isinstance(installed, RenderedRelease) else None)
    )
    if values is None:
        raise InputError("the installed values are unknown on this target",
                         fix="pass base= the values runbook 03 installed")  # fmt: skip
    merged = _merge(values, changes)
    rendered = target.install(merged, release)
    if not isinstance(installed, RenderedRelease):
        target.rendered = rendered  # type: ignore[attr-defined]  # a cluster keeps no local copy
    waited = target.wait_ready(timeout)
    kinds = sorted({obj["kind"] for _, obj in rendered.objects} - {"Pod"})
    command = helm_command(merged, release=release, namespace=target.namespace)
    report = StepReport("upgrade.reuse", f"helm upgrade {release} with observability and ingress", ["kind", "name"],
                        [[obj["kind"], obj["metadata"]["name"]] for _, obj in rendered.objects if obj["kind"] != "Pod"],
                        summary=f"ready after {waited:.2f}s", seconds=time.perf_counter() - start, command=command,
                        values={"kinds": kinds, "ready_after_s": round(waited, 3)})  # fmt: skip
    record(report)
    return report


# -- TLS ----------------------------------------------------------------------------------------


def self_signed(hosts: list[str], days: int = 30) -> tuple[bytes, bytes]:
    """A self-signed CA certificate (PEM) naming ``hosts``, and its P-256 key (PEM, unencrypted)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _fingerprint(pem: bytes) -> str:
    der = base64.b64decode(
        b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def create_tls_secret(target: Target, name: str = "helm-ingress-tls", *, hosts: tuple[str, ...] = ("helm.local",),
                      days: int = 30) -> StepReport:  # fmt: skip
    """``kubectl create secret tls``: a self-signed certificate for the Ingress hosts (kept when
    a valid one for those hosts already exists: runbooks are re-run on the same namespace)."""
    start = time.perf_counter()
    existing = target.secrets.get(name)
    if existing is not None:
        crt, _ = tls_pair(target.secrets, name, hosts)
        what = "kept (valid for the hosts)"
    else:
        crt, key = self_signed(list(hosts), days)
        target.create_secret(name, {"tls.crt": crt.decode(), "tls.key": key.decode()})
        target.save()
        what = "created"
    fingerprint = _fingerprint(crt)
    report = StepReport("ingress.tls-secret", f"TLS Secret {name}", ["Secret", "hosts", "certificate", "what"],
                        [[name, ", ".join(hosts), fingerprint, what]], summary=f"{what}: self-signed, its own CA",
                        seconds=time.perf_counter() - start,
                        command=f"kubectl create secret tls {name} --cert=tls.crt --key=tls.key",
                        values={"secret": name, "hosts": list(hosts), "fingerprint": fingerprint, "created": what == "created"})  # fmt: skip
    record(report)
    return report


def ingress_check(target: Target, *, tls_secret: str = "helm-ingress-tls", address: str = "",
                  auth_secret: str = "helm-auth") -> StepReport:  # fmt: skip
    """Over https by host name (resolved to the ingress address, SNI and Host set), trusting only
    the TLS Secret's CA: ``/health`` answers, a governed request is decided, an untrusting
    client is refused by the TLS handshake."""
    start = time.perf_counter()
    release = _release(target)
    plan = ingress_plan(release)
    if plan is None:
        raise StepFailed("ingress", expected="a rendered Ingress", seen="none in the release",
                         fix="install with ingress.enabled=true and an ingress.tls entry")  # fmt: skip
    hosts = plan.tls_hosts
    host = next((h for h, s in hosts.items() if s == tls_secret), None)
    if host is None:
        raise StepFailed("ingress", expected=f"an Ingress TLS entry with secretName {tls_secret}",
                         seen=f"TLS entries {dict(plan.tls)}", fix="add it to ingress.tls")  # fmt: skip
    local_nginx = not address
    if not address:
        local = target.ingress() if hasattr(target, "ingress") else {}
        if not local:
            raise InputError(
                "no ingress address", fix="pass address= the ingress controller's host:port"
            )
        address = f"127.0.0.1:{local['https_port']}"
    ca, _ = tls_pair(target.secrets, tls_secret, (host,))
    rows: list[list[object]] = []
    with RuntimeClient.for_ingress(
        target, host=host, address=address, ca_pem=ca, auth_secret=auth_secret
    ) as client:
        r = client.health()
        ok = r.status_code == 200
        rows.append(
            [f"GET https://{host}/health", r.status_code, r.text[:20], "PASS" if ok else "FAIL"]
        )
        if not ok:
            raise StepFailed("ingress.health", expected=f"200 from https://{host}/health through the Ingress",
                             seen=f"{r.status_code} {r.text[:120]}", fix="check the Ingress backend and nginx's error.log")  # fmt: skip
        # Which server answered: the ingress controller's own header (the runtime sends none of
        # its own), so the record proves the request went through the controller.
        served_by = r.headers.get("server", "")
        from_nginx = served_by.lower().startswith("nginx")
        rows.append(["Server header of that answer", "-", served_by or "(none)",
                     "PASS" if from_nginx or not local_nginx else "FAIL"])  # fmt: skip
        if local_nginx and not from_nginx:
            raise StepFailed("ingress.server", expected="the answer served by the local nginx ingress controller (Server: nginx)",
                             seen=f"Server: {served_by or '(none)'}", fix="the request bypassed the Ingress: check the ingress address")  # fmt: skip
        decision = client.evaluate(
            {"tool": "unknown.tool.kind", "effect_level": "E1", "session_id": "agent.ingress"}
        )
        verdict = decision.get("verdict")
        rows.append(
            [
                f"POST https://{host}/api/v1/evaluate",
                200,
                verdict,
                "PASS" if verdict == "DENY" else "FAIL",
            ]
        )
        if verdict != "DENY":
            raise StepFailed("ingress.governed", expected="DENY for an unknown tool through the Ingress",
                             seen=str(verdict), fix="check the release's policy")  # fmt: skip
    try:
        with RuntimeClient.for_ingress(
            target, host=host, address=address, ca_pem=None, auth_secret=auth_secret
        ) as plain:
            plain.health()
        refused = "not refused"
    except TargetUnavailable as exc:
        refused = (
            "CERTIFICATE_VERIFY_FAILED"
            if "CERTIFICATE_VERIFY_FAILED" in str(exc)
            else str(exc)[:80]
        )
    rows.append(
        [
            "the same with the system CAs only",
            "-",
            refused,
            "PASS" if refused == "CERTIFICATE_VERIFY_FAILED" else "FAIL",
        ]
    )
    if refused != "CERTIFICATE_VERIFY_FAILED":
        raise StepFailed("ingress.trust", expected="a client without the CA refused by the TLS handshake",
                         seen=refused, fix="serve the TLS Secret's certificate on the Ingress host")  # fmt: skip
    report = StepReport("ingress", f"https through Ingress {plan.name}", ["request", "status", "answer", "check"], rows,
                        summary=f"{host} → {address} (SNI {host}, CA {_fingerprint(ca)})", seconds=time.perf_counter() - start,
                        command=f"curl --cacert tls.crt --resolve {host}:443:<ingress address> https://{host}/health",
                        values={"host": host, "health": 200, "governed_verdict": verdict, "untrusted": refused,
                                "served_by": served_by})  # fmt: skip
    record(report)
    return report


# -- Prometheus ---------------------------------------------------------------------------------


def _prometheus(target: Target, prometheus_url: str) -> str:
    if prometheus_url:
        return prometheus_url
    local = target.prometheus().url if hasattr(target, "prometheus") else None
    if not local:
        raise InputError("no Prometheus URL", fix="run start_prometheus first, or pass prometheus_url= "
                         "the cluster Prometheus's API (e.g. http://prometheus-operated.monitoring:9090)")  # fmt: skip
    return str(local)


def start_prometheus(target: Target, *, prometheus_url: str = "") -> StepReport:
    """The monitoring stack, before the release asks to be scraped: on the local target a
    Prometheus server (scraping the release's ServiceMonitor job if it has one already, else none
    yet: the upgrade that renders the ServiceMonitor adds it, as prometheus-operator would); on a
    cluster its own Prometheus (``prometheus_url``), which must answer. Prometheus takes targets
    only on a fixed 5 s tick from its start: started first, that tick runs beside the upgrade."""
    start = time.perf_counter()
    job: ScrapeJob | None = None
    if not prometheus_url and hasattr(target, "start_monitoring"):
        job = target.start_monitoring()
        scraping = job.name if job else "no job yet (the release has no ServiceMonitor)"
    else:
        scraping = "the cluster's own jobs"
    url = _prometheus(target, prometheus_url)
    with PromQL(url) as promql:
        promql.vector("vector(1)")  # answers queries (a cluster Prometheus's URL is right)
    report = StepReport("metrics.start", "Prometheus, before the release is scraped", ["field", "value"],
                        [["Prometheus", url], ["scraping", scraping]], summary=f"{url} answers queries",
                        seconds=time.perf_counter() - start,
                        values={"prometheus": url, "job": job.name if job else None})  # fmt: skip
    record(report)
    return report


def prometheus_scrapes(
    target: Target, *, prometheus_url: str = "", timeout: float = 30.0
) -> StepReport:
    """The release's scrape job derived from its ServiceMonitor and Service, run by the local
    Prometheus (``start_prometheus``; the upgrade configured it) or the cluster's
    (``prometheus_url``). Passes when the job's target is up: scraped successfully after the step
    began."""
    start, began = time.perf_counter(), time.time()
    # The chart's library (about 0.5 s of imports the figures step would wait for) loads while
    # this step waits for Prometheus's discovery tick, when nothing else needs the CPU.
    threading.Thread(target=_load_chart_library, name="matplotlib-import", daemon=True).start()
    job = scrape_job(_release(target))
    if not prometheus_url and hasattr(target, "start_monitoring"):
        if job.container_port not in target.forwarded_ports():
            raise StepFailed("metrics.port", expected=f"the pod serving container port {job.container_port}",
                             seen=f"ports {sorted(target.forwarded_ports())}", fix="install with helm.metrics.enabled=true")  # fmt: skip
        # Running with this job already (the upgrade reconfigured it): nothing changes; else
        # started or reconfigured here.
        target.start_monitoring()
    url = _prometheus(target, prometheus_url)
    with PromQL(url) as promql:
        scraped = promql.wait_scrape_after(job.selector_promql, began, timeout)
    rows: list[list[object]] = [["job", job.name], ["Service", job.service], ["endpoint port", job.endpoint_port],
                                ["container port", job.container_port], ["path", job.path], ["interval", job.interval],
                                ["selector", job.selector], ["target", f"up{job.selector_promql} = 1"]]  # fmt: skip
    report = StepReport("metrics.prometheus", "Prometheus scrapes the release (job from its ServiceMonitor)",
                        ["field", "value"], rows, summary=f"{url}: last scrape {time.time() - scraped:.1f}s ago",
                        seconds=time.perf_counter() - start,
                        values={"job": job.name, "service": job.service, "port": job.endpoint_port, "path": job.path,
                                "interval": job.interval, "up": 1, "scraped_after_start_s": round(scraped - began, 3)})  # fmt: skip
    record(report)
    return report


def governed_burst(
    target: Target, *, requests: int = 60, seconds: float = 6.0, prometheus_url: str = "",
    auth_secret: str = "helm-auth",
) -> StepReport:  # fmt: skip
    """A bounded burst of governed decisions (a permitted read, a forbidden one, an unknown tool) in one
    new session, after Prometheus has sampled the quiet state; counts the receipts it wrote."""
    if not 1 <= requests <= MAX_BURST or not 0 < seconds <= 120:
        raise InputError(f"burst of {requests} requests over {seconds}s",
                         fix=f"use 1..{MAX_BURST} requests over at most 120 seconds")  # fmt: skip
    start = time.perf_counter()
    job = scrape_job(_release(target))
    quiet = time.time()
    with PromQL(_prometheus(target, prometheus_url)) as promql:
        promql.wait_scrape_after(job.selector_promql, quiet, 3 * job.interval_s + 10)
    began = time.time()
    session = f"burst-{int(began)}"
    answered: Counter[str] = Counter()
    kinds: list[dict[str, Any]] = [  # the verdicts are the installed policy's (05 allows this read)
        {"tool": "file_read", "effect_level": "E1", "args": {"path": "/etc/hostname"}},
        {"tool": "file_read", "effect_level": "E1", "args": {"path": "/etc/shadow"}},
        {"tool": "unknown.tool.kind", "effect_level": "E1"},
    ]
    with (
        RuntimeClient.for_target(target, auth_secret=auth_secret) as client,
        progress("burst", "request") as bar,
    ):
        for n in range(requests):
            decision = client.evaluate({**kinds[n % len(kinds)], "session_id": session})
            answered[str(decision.get("verdict"))] += 1
            bar.update(1)
            time.sleep(max(0.0, began + (n + 1) * seconds / requests - time.time()))
        receipts = Counter(
            str(r.get("verdict") or r.get("decision", {}).get("verdict"))
            for r in client.receipts(session_id=session)
        )
    ended = time.time()
    if receipts != answered:
        raise StepFailed("metrics.burst", expected="one receipt per decision, same verdicts",
                         seen=f"decisions {dict(answered)}, receipts {dict(receipts)}", fix="check the receipt store")  # fmt: skip
    rows: list[list[object]] = [
        [verdict, answered[verdict], receipts[verdict]] for verdict in sorted(answered)
    ]
    report = StepReport("metrics.burst", f"{requests} governed decisions over {seconds:g}s", ["verdict", "decisions", "receipts"],
                        rows, summary=f"session {session}: {sum(receipts.values())} receipts written",
                        seconds=time.perf_counter() - start,
                        values={"session": session, "start": began, "end": ended, "requests": requests,
                                "receipts": dict(receipts), "quiet": quiet})  # fmt: skip
    record(report)
    return report


def _burst_window(burst: StepReport) -> tuple[float, float]:
    began, ended = burst.values.get("start"), burst.values.get("end")
    if not isinstance(began, float) or not isinstance(ended, float):
        raise InputError("not a burst report", fix="pass the report governed_burst returned")
    return began, ended


def burst_figures(target: Target, burst: StepReport, *, prometheus_url: str = "") -> FigureReport:
    """PromQL over the burst: decisions by verdict, request rate, latency quantiles from the
    histogram, the policy reconcile state; the counts must equal the receipts written. With a
    chart of decisions over time by verdict and the latency quantiles."""
    start = time.perf_counter()
    job = scrape_job(_release(target))
    began, ended = _burst_window(burst)
    with PromQL(_prometheus(target, prometheus_url)) as promql:
        report = _figures(promql, job, burst, began, ended, start)
    record(report)
    failed = [row for row in report.rows if row[-1] == "FAIL"]
    if failed:
        raise StepFailed("metrics.figures", expected="Prometheus's counts equal the receipts written",
                         seen="; ".join(f"{r[0]}: {r[2]} vs {r[3]}" for r in failed),
                         fix="every decision is counted once and writes one receipt: check scrape gaps (up) and restarts")  # fmt: skip
    return report


def _figures(
    promql: PromQL, job: ScrapeJob, burst: StepReport, began: float, ended: float, start: float
) -> FigureReport:
    """The figures, their checks against the receipts and the chart (one Prometheus client)."""
    after = promql.wait_scrape_after(job.selector_promql, ended, 3 * job.interval_s + 10)
    sel = promql.newest_target(job.selector_promql, after)
    before = float(burst.values.get("quiet", began))  # type: ignore[arg-type]
    window = f"{max(1, round(after - before))}s"

    def delta(metric: str) -> float:
        return promql.scalar(f"{metric}{sel}", at=after) - promql.scalar(f"{metric}{sel}", at=began)

    figures = {"ALLOW": delta("helm_allows_total"), "DENY": delta("helm_denials_total"),
               "decisions": delta("helm_decisions_total"), "histogram": delta("helm_decision_latency_seconds_count")}  # fmt: skip
    receipts: dict[str, int] = dict(burst.values.get("receipts") or {})  # type: ignore[call-overload]
    total = sum(receipts.values())
    rows: list[list[object]] = []
    checks = [("decisions ALLOW", f"increase of helm_allows_total{sel}", figures["ALLOW"], receipts.get("ALLOW", 0)),
              ("decisions DENY", f"increase of helm_denials_total{sel}", figures["DENY"], total - receipts.get("ALLOW", 0)),
              ("decisions", f"increase of helm_decisions_total{sel}", figures["decisions"], total),
              ("latency observations", f"increase of helm_decision_latency_seconds_count{sel}", figures["histogram"], total)]  # fmt: skip
    for label, query, seen, want in checks:
        rows.append(
            [label, query, f"{seen:g}", f"{want} receipts", "PASS" if seen == want else "FAIL"]
        )
    during = f"{max(1, round((ended - began) * 1000))}ms"
    scrapes = promql.scalar(f"sum_over_time(up{sel}[{during}])", at=ended)
    rows.append(
        ["scrapes during the burst", f"sum_over_time(up[{during}])", f"{scrapes:g}", "-", "INFO"]
    )
    rate = promql.scalar(f"sum(rate(helm_decisions_total{sel}[{window}]))", at=after)
    rows.append(
        ["request rate", f"rate(helm_decisions_total[{window}])", f"{rate:.2f}/s", "-", "INFO"]
    )
    quantiles = {}
    for q in QUANTILES:
        value = promql.scalar(
            f"histogram_quantile({q}, sum by (le) (increase(helm_decision_latency_seconds_bucket{sel}[{window}])))",
            at=after,
        )
        quantiles[f"p{round(q * 100)}"] = value * 1000
        rows.append(
            [
                f"latency p{round(q * 100)}",
                "histogram_quantile over the buckets",
                f"{value * 1000:.2f} ms",
                "-",
                "INFO",
            ]
        )
    state = [
        m.get("status")
        for m, v in promql.vector(f"helm_policy_reconcile_status{sel} == 1", at=after)
    ]
    epoch = promql.scalar(f"helm_policy_epoch{sel}", at=after)
    rows.append(["policy reconcile", "helm_policy_reconcile_status == 1", f"{state} epoch {epoch:g}", "ok or no_change",
                 "PASS" if state and state[0] in ("ok", "no_change") else "FAIL"])  # fmt: skip
    png = _chart(promql, sel, began, ended, job.interval_s)
    report = FigureReport("metrics.figures", "PromQL over the burst agrees with the receipts",
                          ["figure", "PromQL", "Prometheus", "receipts", "check"], rows,
                          summary=f"{total} receipts, {figures['decisions']:g} decisions counted by Prometheus",
                          seconds=time.perf_counter() - start, png=png,
                          command=f"curl -G {promql.url}/api/v1/query --data-urlencode "
                                  f"{shlex.quote(f'query=sum(rate(helm_decisions_total{sel}[{window}]))')}",
                          values={"prometheus": figures, "receipts": receipts, "rate_per_s": round(rate, 3),
                                  "latency_ms": quantiles, "reconcile_status": state[0] if state else None,
                                  "policy_epoch": epoch, "chart_png_bytes": len(png), "scrapes_during_burst": scrapes})  # fmt: skip
    return report


def _load_chart_library() -> Any:
    """matplotlib's pyplot on the Agg backend (no display); imported once, by whichever comes first."""
    with _CHART_IMPORT:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        return pyplot


def _chart(promql: PromQL, sel: str, began: float, ended: float, interval: float) -> bytes:
    """Decisions per scrape interval by verdict, and latency quantiles, as one PNG."""
    plt = _load_chart_library()

    step = interval
    lo, hi = began - 2 * step, ended + 2 * step
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True)
    window = 3 * step  # a rate needs two samples in its window: three scrapes' worth
    span = f"{round(window * 1000)}ms"  # a PromQL range takes whole units: 1.5s is 1500ms
    for metric, verdict, colour in (
        ("helm_allows_total", "ALLOW", "#1a7f37"),
        ("helm_denials_total", "DENY", "#cf222e"),
    ):
        for _, points in promql.matrix(f"rate({metric}{sel}[{span}])", lo, hi, step):
            top.plot(
                [t - began for t, _ in points],
                [v for _, v in points],
                label=verdict,
                color=colour,
                marker="o",
                ms=3,
            )
    top.set_ylabel(f"decisions/s (rate over {window:g}s)")
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="upper right")
    top.set_title("governed burst, from Prometheus")
    for q in QUANTILES:
        query = f"histogram_quantile({q}, sum by (le) (increase(helm_decision_latency_seconds_bucket{sel}[{span}])))"
        for _, points in promql.matrix(query, lo, hi, step):
            kept = [
                (t - began, v * 1000) for t, v in points if v == v
            ]  # NaN where nothing happened
            bottom.plot(
                [t for t, _ in kept],
                [v for _, v in kept],
                label=f"p{round(q * 100)}",
                marker=".",
                ms=3,
            )
    bottom.set_ylabel("decision latency (ms)")
    bottom.set_xlabel("seconds since the burst began")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper right")
    for axis in (top, bottom):
        axis.axvspan(0, ended - began, color="#888", alpha=0.1)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=96)
    plt.close(fig)
    return out.getvalue()


class FigureReport(StepReport):
    """A step report with a chart: a PNG in Jupyter and on the site (inline, no external script)."""

    def __init__(self, *args: Any, png: bytes = b"", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.png = png

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_html_(self) -> str:
        image = base64.b64encode(self.png).decode()
        return (f'{super()._repr_html_()}<p><img alt="decisions by verdict and latency quantiles during the burst" '
                f'src="data:image/png;base64,{image}"></p>')  # fmt: skip


__all__ = ["FigureReport", "ScrapeJob", "burst_figures", "create_tls_secret", "governed_burst",
           "ingress_check", "prometheus_scrapes", "start_prometheus", "upgrade_reusing_values"]  # fmt: skip
