"""``diagnose(target)``: recognise each symptom of the deployment guide's troubleshooting table
from what an operator can read (the rendered Deployment, Secrets, ConfigMaps, pod logs, the
ports), and name the fix in the guide's words.

Every check reads; none changes the release. Checks that need something only the operator knows
(the values they are about to install, the URL their clients use) run when it is passed in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.values import is_placeholder_upstream
from helm_runbook.errors import ChartError, StepFailed, TargetUnavailable
from helm_runbook.formats.keys import verify_hex
from helm_runbook.formats.policy_bundle import (
    PolicyFileError,
    composite_material,
    pack_ref,
    parse_serve_policy,
    policy_hash,
    reference_pack_path,
)
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport, shortened
from helm_runbook.standins.ingress import ingress_plan, tls_pair
from helm_runbook.standins.observability import scrape_job
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient


@dataclass(frozen=True)
class GuideRow:
    """One row of the deployment guide's troubleshooting table."""

    symptom: str
    cause: str
    fix: str


# The deployment guide's troubleshooting table, keyed by the check that recognises each row.
GUIDE: dict[str, GuideRow] = {
    "readiness": GuideRow(
        "pod starts but readiness fails",
        "health port or initial snapshot failure",
        "inspect `HELM_HEALTH_PORT`, policy source env, mounted-file bytes, and pod logs",
    ),
    "service-key": GuideRow(
        "`/internal/policy/reconcile` returns unauthorized",
        "missing service API key",
        "set `helm.auth.serviceAPIKey` or `helm.auth.existingSecret`",
    ),
    "policy-delivery": GuideRow(
        "policy ConfigMap changed but decisions did not",
        "ConfigMap delivery is only a source backend",
        "verify the bundle hash/signature and reconciler status; enable sidecar only as a wake hint",
    ),
    "policy-signature": GuideRow(
        "policy reconcile fails with signature error",
        "missing trust public key, missing signature, or invalid bundle signature",
        "set `helm.policy.signature.existingSecret` or `publicKey`, and verify the active source signs "
        "canonical bundle bytes",
    ),
    "render": GuideRow(
        "production render fails",
        "missing signing key or API key material",
        "set `helm.signing.existingSecret` and `helm.auth.existingSecret`, or provide explicit values",
    ),
    "persistence": GuideRow(
        "receipts disappear after restart",
        "persistence disabled or PVC not bound",
        "set `persistence.enabled=true` and verify PVC status",
    ),
    "client-url": GuideRow(
        "ingress works but upstream calls bypass HELM",
        "client points at upstream provider",
        "point clients at the service or ingress URL for HELM, not the provider URL",
    ),
}


# Symptoms of the optional paths the guide's table leaves out (metrics, ingress TLS), recognised
# the same way; runbook 09 exercises these paths.
OPERATIONS: dict[str, GuideRow] = {
    "metrics-scrape": GuideRow(
        "metrics enabled but nothing scraped",
        "the ServiceMonitor's port or path does not match the Service or the metrics port",
        "name the Service's metrics port in the ServiceMonitor endpoint, target the container's "
        "`metrics` port, and scrape `/metrics`",
    ),
    "proxy-upstream": GuideRow(
        "proxy calls fail with 502 helm_upstream_error",
        "`helm.proxy.upstream` is still the chart's placeholder (https://your-upstream.example/v1), "
        "or the upstream does not answer",
        "set `helm.proxy.upstream` to your OpenAI-compatible upstream (`https://.../v1`), or "
        "`helm.proxy.enabled=false`",
    ),
    "ingress-tls": GuideRow(
        "https through the ingress fails",
        "the Ingress's TLS Secret is missing or invalid",
        "create the Secret named in `ingress.tls[].secretName` with `kubectl create secret tls` "
        "(a certificate for the Ingress hosts and its key)",
    ),
}
SYMPTOMS = {**GUIDE, **OPERATIONS}


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # "ok", "problem" or "skipped"
    seen: str
    fix: str = ""


DIAGNOSIS_COLUMNS = ("check", "status", "seen", "fix")


@dataclass(kw_only=True)
class Diagnosis(StepReport):
    """Every check's finding, as a step's result: one table row per finding, ``problems`` names
    the rows that apply (FAIL in the table when any does)."""

    step: str = "diagnose"
    title: str = "troubleshooting checks"
    columns: Sequence[str] = DIAGNOSIS_COLUMNS
    findings: list[Finding] = field(default_factory=list)
    injected: list[str] = field(
        default_factory=list
    )  # checks whose fault the runbook injected (require)

    def __post_init__(self) -> None:
        self.ok = not self.problems
        self.rows = [[f.check, f.status.upper(), f.seen, f.fix] for f in self.findings]
        self.summary = ", ".join(self.problems) if self.problems else "no problem found"
        self.values = {"problems": self.problems, "checks": len(self.findings), **self.values}

    def as_record(self) -> dict[str, object]:
        # A diagnosis that finds a problem is a step that ran: what it found is in the values,
        # not in the recorded status (the banner counts a runbook passed when its steps did).
        return {**super().as_record(), "ok": True}

    @property
    def problems(self) -> list[str]:
        return [f.check for f in self.findings if f.status == "problem"]

    def finding(self, check: str) -> Finding:
        return next(f for f in self.findings if f.check == check)

    def require(self, check: str) -> Diagnosis:
        """Fail unless ``check`` found a problem (the troubleshooting runbook proves each row)."""
        if check not in self.problems:
            raise StepFailed("diagnose", expected=f"the {check!r} symptom recognised ({SYMPTOMS[check].symptom})",
                             seen=f"problems: {self.problems or 'none'}; {self.finding(check).seen}",
                             fix="the fault was not injected, or diagnose() no longer recognises it")  # fmt: skip
        self.injected.append(check)
        return self

    @property
    def expected_failure(self) -> bool:
        """Every problem found is a fault the runbook injected and required to be detected."""
        return bool(self.problems) and set(self.problems) <= set(self.injected)

    def require_healthy(self) -> Diagnosis:
        """Fail when any check found a problem (a release that should be healthy)."""
        if self.problems:
            first = self.finding(self.problems[0])
            raise StepFailed("diagnose", expected="no problem found", seen=f"problems: {self.problems}; {first.seen}",
                             fix=first.fix or SYMPTOMS[first.check].fix)  # fmt: skip
        return self


def diagnose(
    target: Target, *, release: str = "", namespace: str = "", values: dict[str, Any] | None = None,
    client_url: str | None = None, auth_secret: str | None = None,
) -> Diagnosis:  # fmt: skip
    """Run every check of the troubleshooting table against ``target``.

    ``release`` and ``namespace``: the release to read (on a cluster found by Helm's
    ``app.kubernetes.io/instance`` label; ``""``: the target's own). ``values``: the values about
    to be installed (the render check). ``client_url``: the base URL an OpenAI client is
    configured with (the bypass check). ``auth_secret``: the Secret holding the operator's service
    key, when it is not the one the Deployment references.
    """
    start = time.perf_counter()
    target = _for_release(target, release, namespace)
    findings: list[Finding] = []
    context = _Context.read(target)
    # in the order of the guide's table
    checks: tuple[tuple[str, Callable[[], tuple[str, str]]], ...] = (
        ("readiness", lambda: _readiness(target, context)),
        ("service-key", lambda: _service_key(target, context, auth_secret)),
        ("policy-delivery", lambda: _policy_delivery(target, context)),
        ("policy-signature", lambda: _policy_signature(target, context)),
        ("render", lambda: _render(values)),
        ("persistence", lambda: _persistence(target, context)),
        ("client-url", lambda: _client_url(target, context, client_url)),
        ("metrics-scrape", lambda: _metrics_scrape(target)),
        ("proxy-upstream", lambda: _proxy_upstream(target, context)),
        ("ingress-tls", lambda: _ingress_tls(target)),
    )
    for name, check in checks:
        status, seen = check()
        fix = SYMPTOMS[name].fix if status == "problem" else ""
        if name == "readiness" and context.no_pod is not None:
            fix = context.no_pod.fix  # no probe to inspect: the pod has to be started first
        findings.append(Finding(name, status, seen, fix))
    out = Diagnosis(findings=findings, seconds=time.perf_counter() - start)
    record(out)
    return out


def _for_release(target: Target, release: str, namespace: str) -> Target:
    """The target reading ``release`` in ``namespace``: a kube target is re-pointed (the same
    connection); the local target is one namespace holding one release, so another release name
    is refused (and ``namespace``, a cluster's, does not apply)."""
    if not release and not namespace:
        return target
    select = getattr(target, "for_release", None)
    if callable(select):
        chosen: Target = select(release or None, namespace or None)
        return chosen
    installed = _rendered(target)
    if release and installed is not None and installed.release != release:
        raise TargetUnavailable(f"no release {release} on the {target.name} target (it holds {installed.release})",
                                fix=f"diagnose release={installed.release!r}, or install {release} with runbook 03")  # fmt: skip
    return target


def _rendered(target: Target) -> RenderedRelease | None:
    release = getattr(target, "release", None)
    rendered = (
        release if isinstance(release, RenderedRelease) else getattr(target, "rendered", None)
    )
    return rendered if isinstance(rendered, RenderedRelease) else None


def _metrics_scrape(target: Target) -> tuple[str, str]:
    """The ServiceMonitor's endpoint resolves through the Service to a container port, and that
    port serves the endpoint's path (what Prometheus would scrape)."""
    release = _rendered(target)
    if release is None or not release.of_kind("ServiceMonitor"):
        return "skipped", "no ServiceMonitor rendered (helm.metrics.serviceMonitor off)"
    try:
        job = scrape_job(release)
    except StepFailed as exc:
        return "problem", f"{exc.seen} (expected {exc.expected})"
    try:
        port = target.forwarded_ports().get(job.container_port)
    except TargetUnavailable:
        return "skipped", "no pod running"
    if port is None:
        return "problem", f"container port {job.container_port} is not served by the pod"
    with RuntimeClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        try:
            r = client.send("GET", job.path, auth="none")
        except TargetUnavailable as exc:
            return "problem", f"GET {job.path} on port {job.container_port}: {exc}"
    if r.status_code != 200 or "helm_decisions" not in r.text:
        return (
            "problem",
            f"GET {job.path} on port {job.container_port} answered {r.status_code}, no helm_decisions",
        )
    return "ok", f"{job.name} scrapes {job.path} on {job.service}:{job.endpoint_port}"


def _ingress_tls(target: Target) -> tuple[str, str]:
    """Every TLS entry of the Ingress names a Secret holding a matching certificate and key for its hosts."""
    release = _rendered(target)
    plan = ingress_plan(release) if release is not None else None
    if plan is None or not plan.tls:
        return "skipped", "no Ingress with TLS rendered"
    for secret, hosts in plan.tls:
        try:
            tls_pair(target.secrets, secret, hosts)
        except StepFailed as exc:
            return "problem", f"{exc.seen} (expected {exc.expected})"
    return "ok", f"TLS Secrets {', '.join(s for s, _ in plan.tls)} valid for their hosts"


# -- what the checks read ------------------------------------------------------------------------


@dataclass
class _Context:
    deployment: dict[str, Any] | None
    logs: str
    no_pod: TargetUnavailable | None = None  # installed, but no pod runs (stopped, never started)

    @classmethod
    def read(cls, target: Target) -> _Context:
        try:
            deployment = target.deployment
        except TargetUnavailable:
            deployment = None
        try:
            return cls(deployment, target.logs())
        except TargetUnavailable as exc:
            return cls(deployment, "", exc if deployment is not None else None)

    @property
    def pod_spec(self) -> dict[str, Any]:
        assert self.deployment is not None
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        container: dict[str, Any] = self.pod_spec["containers"][0]
        return container

    def env(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.container.get("env", []) if e["name"] == name), None)

    def env_value(self, target: Target, name: str) -> str | None:
        """A variable's value as the pod sees it (``value`` or a Secret/ConfigMap key)."""
        entry = self.env(name)
        if entry is None:
            return None
        if "value" in entry:
            return str(entry["value"])
        source = entry.get("valueFrom", {})
        if ref := source.get("secretKeyRef"):
            raw = target.secrets.get(ref["name"], {}).get(ref["key"])
            return None if raw is None else raw.decode()
        if ref := source.get("configMapKeyRef"):
            return target.config_maps.get(ref["name"], {}).get(ref["key"])
        return None

    def mount(self, path: str) -> dict[str, Any] | None:
        """The volume mounted at ``path`` in the runtime container."""
        mounts = {m["mountPath"]: m["name"] for m in self.container.get("volumeMounts", [])}
        name = mounts.get(path)
        return next((v for v in self.pod_spec.get("volumes", []) if v["name"] == name), None)

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.logs.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                item = {"msg": line}
            if isinstance(item, dict):
                out.append(item)
        return out

    def active_policy_hash(self) -> str | None:
        """The policy hash the runtime last reported serving (start-up or a successful reconcile)."""
        active = None
        for item in self.log_records():
            if item.get("reconcile_status") in ("ok",) and item.get("policy_hash"):
                active = str(item["policy_hash"])
            elif m := re.search(
                r"reconciled snapshot hash=(sha256:[0-9a-f]+)", str(item.get("msg", ""))
            ):
                active = m.group(1)
        return active

    def last_reconcile_failure(self) -> str | None:
        failure = None
        for item in self.log_records():
            status = item.get("reconcile_status")
            if status == "ok":
                failure = None
            elif status:
                failure = f"{status}: {item.get('reason', '')}"
        return failure


_OK, _PROBLEM, _SKIPPED = "ok", "problem", "skipped"
_NOT_INSTALLED = (_SKIPPED, "nothing installed")


def _render(values: dict[str, Any] | None) -> tuple[str, str]:
    if values is None:
        return _SKIPPED, "pass values= to check a render"
    from helm_runbook.chart import CHART_DIR
    from helm_runbook.chart.sdk import render

    try:
        render(CHART_DIR, values)
    except ChartError as exc:
        return _PROBLEM, exc.message
    return _OK, "the values render"


def _proxy_upstream(target: Target, ctx: _Context) -> tuple[str, str]:
    """Production renders with the chart's placeholder upstream (as upstream's chart does): the
    release then points its proxy at no real upstream, which only shows when a chat call fails."""
    if ctx.deployment is None:
        return _NOT_INSTALLED
    if ctx.env_value(target, "HELM_ENABLE_OPENAI_PROXY") != "1":
        return _SKIPPED, "the proxy is off (helm.proxy.enabled=false)"
    upstream = ctx.env_value(target, "HELM_UPSTREAM_URL") or ""
    if not upstream or is_placeholder_upstream(upstream):
        return _PROBLEM, (f"HELM_UPSTREAM_URL is {'the chart placeholder ' + upstream if upstream else 'empty'}: "
                          "the proxy points at no real upstream, so allowed chat calls fail (502/503)")  # fmt: skip
    return _OK, f"the proxy forwards to {upstream}"


def _port_number(container: Mapping[str, Any], port: object) -> int | None:
    if isinstance(port, int):
        return port
    return next(
        (int(p["containerPort"]) for p in container.get("ports", []) if p.get("name") == port), None
    )


def _readiness(target: Target, ctx: _Context) -> tuple[str, str]:
    if ctx.deployment is None:
        return _NOT_INSTALLED
    if ctx.no_pod is not None:
        return _PROBLEM, ctx.no_pod.message
    container = ctx.container
    probe = container.get("readinessProbe", {}).get("httpGet", {})
    probed = _port_number(container, probe.get("port"))
    health_env = ctx.env_value(target, "HELM_HEALTH_PORT") or "8081"
    health = _port_number(container, "health")
    if health is not None and str(health) != health_env:
        return (
            _PROBLEM,
            f"HELM_HEALTH_PORT={health_env} but the container port named health is {health}",
        )
    if probed is None or str(probed) != health_env:
        return _PROBLEM, (f"the readiness probe checks port {probe.get('port')!r} ({probed}), but the runtime "
                          f"serves /health on HELM_HEALTH_PORT={health_env}")  # fmt: skip
    errors = [
        str(i.get("msg", "")) + " " + str(i.get("error", ""))
        for i in ctx.log_records()
        if i.get("level") == "ERROR"
    ]
    try:
        with RuntimeClient(target.url("health"), timeout=2) as client:
            ready = (
                client.send("GET", str(probe.get("path", "/health")), auth="none").status_code
                == 200
            )
    except (TargetUnavailable, KeyError):
        ready = False
    if not ready:
        seen = errors[-1].strip() if errors else "the health port does not answer"
        return _PROBLEM, f"not ready: {shortened(seen, 300)}"
    return _OK, f"probe on port {probed} answers; HELM_HEALTH_PORT={health_env}"


def _service_key(target: Target, ctx: _Context, auth_secret: str | None) -> tuple[str, str]:
    if ctx.deployment is None:
        return _NOT_INSTALLED
    entry = ctx.env("HELM_SERVICE_API_KEY")
    if entry is None:
        return _PROBLEM, "the Deployment sets no HELM_SERVICE_API_KEY: the wake hint answers 401"
    value = ctx.env_value(target, "HELM_SERVICE_API_KEY")
    if value is None:
        ref = entry.get("valueFrom", {}).get("secretKeyRef", {})
        return (
            _PROBLEM,
            f"HELM_SERVICE_API_KEY comes from Secret {ref.get('name')} key {ref.get('key')}, which does not exist",
        )
    if auth_secret is not None:
        operator = target.secrets.get(auth_secret, {}).get("HELM_SERVICE_API_KEY")
        if operator is None or operator.decode() != value:
            return (
                _PROBLEM,
                f"the key in Secret {auth_secret} is not the one the pod runs with: the wake hint answers 401",
            )
    return _OK, "HELM_SERVICE_API_KEY is set"


def _policy_files(target: Target, ctx: _Context) -> tuple[Path, dict[str, str]] | None:
    """The policy path in the pod and the files of the ConfigMap mounted beside it."""
    args = ctx.container.get("args", [])
    policy = next((Path(a) for a in args if str(a).endswith(".toml")), None)
    if policy is None:
        return None
    volume = ctx.mount(str(policy.parent))
    if volume is None or "configMap" not in volume:
        return None
    return policy, dict(target.config_maps.get(volume["configMap"]["name"], {}))


def _with_mounted_policy(
    check: Callable[[Target, _Context, Path, dict[str, str]], tuple[str, str]],
) -> Callable[[Target, _Context], tuple[str, str]]:
    """Run ``check`` on the policy file and its ConfigMap's files; skip when there are none."""

    def run(target: Target, ctx: _Context) -> tuple[str, str]:
        if ctx.deployment is None:
            return _NOT_INSTALLED
        located = _policy_files(target, ctx)
        if located is None:
            return _SKIPPED, "the policy is not mounted from a ConfigMap"
        return check(target, ctx, *located)

    return run


def _expected(policy: Path, files: Mapping[str, str]) -> tuple[str, bytes]:
    """The policy hash the runtime will compute for these files once mounted at ``policy``, and
    the composite material a ``.sig`` must sign (the runtime's own functions, on the pod's paths)."""
    bundle = files[policy.name].encode()
    serve = parse_serve_policy(bundle, source=str(policy))
    pack_in_pod = reference_pack_path(policy, serve.reference_pack)
    pack = files.get(str(pack_in_pod.relative_to(policy.parent)), "").encode()
    refs = [pack_ref(pack_in_pod, pack)]
    return policy_hash(bundle, [str(policy), *refs]), composite_material(bundle, refs)


@_with_mounted_policy
def _policy_signature(
    target: Target, ctx: _Context, policy: Path, files: dict[str, str]
) -> tuple[str, str]:
    required = (ctx.env_value(target, "HELM_POLICY_SIGNATURE_REQUIRED") or "") in ("1", "true")
    trust = ctx.env_value(target, "HELM_POLICY_TRUST_PUBLIC_KEY") or ""
    signature = files.get(policy.name + ".sig", "").strip()
    failure = ctx.last_reconcile_failure()
    if not required and not trust:
        return _OK, "signatures are not required"
    if not trust:
        return _PROBLEM, "signatures are required but HELM_POLICY_TRUST_PUBLIC_KEY is not set"
    if not signature:
        return _PROBLEM, f"ConfigMap has no {policy.name}.sig: reconcile will refuse the bundle"
    try:
        _, material = _expected(policy, files)
    except (PolicyFileError, KeyError) as exc:
        return _PROBLEM, f"cannot compute the signed material: {exc}"
    if not verify_hex(trust, material, signature):
        seen = f"{policy.name}.sig does not verify with the trust key for the ConfigMap's bytes"
        return _PROBLEM, seen + (f"; last reconcile: {failure}" if failure else "")
    return _OK, "the ConfigMap's bundle is signed by the trusted key"


@_with_mounted_policy
def _policy_delivery(
    target: Target, ctx: _Context, policy: Path, files: dict[str, str]
) -> tuple[str, str]:
    try:
        expected, _ = _expected(policy, files)
    except (PolicyFileError, KeyError) as exc:
        return _PROBLEM, f"the ConfigMap's bundle does not parse: {exc}"
    active = ctx.active_policy_hash()
    if active is None:
        return _SKIPPED, "the pod logs name no active policy hash yet"
    if active != expected:
        return _PROBLEM, (f"the ConfigMap holds {expected[:19]}… but the runtime serves {active[:19]}…: "
                          "not reconciled yet (wake hint or poll interval)")  # fmt: skip
    return _OK, f"the runtime serves the ConfigMap's bundle {expected[:19]}…"


def _persistence(target: Target, ctx: _Context) -> tuple[str, str]:
    if ctx.deployment is None:
        return _NOT_INSTALLED
    if ctx.no_pod is not None:
        return _SKIPPED, "no pod is running: no volume is mounted"
    data_dir = ctx.env_value(target, "HELM_DATA_DIR") or "/data"
    volume = ctx.mount(data_dir)
    if volume is None or "emptyDir" in volume:
        return _PROBLEM, f"{data_dir} is an emptyDir: receipts and the trust root go with the pod"
    claim = volume.get("persistentVolumeClaim", {}).get("claimName")
    phase = target.claim_phase(claim) if claim else None
    if phase != "Bound":
        return _PROBLEM, f"PVC {claim} is {phase or 'missing'}"
    return _OK, f"{data_dir} is PVC {claim} (Bound)"


def _client_url(target: Target, ctx: _Context, client_url: str | None) -> tuple[str, str]:
    if client_url is None:
        return _SKIPPED, "pass client_url= to check where clients send requests"
    body = {
        "model": "diagnose-probe",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }
    try:
        with RuntimeClient(client_url, timeout=5) as client:
            response = client.send("POST", "/chat/completions", auth="none", json=body)
    except TargetUnavailable as exc:
        return _PROBLEM, f"{client_url} does not answer: {exc.message}"
    if response.headers.get("X-HELM-Governed") == "true" or "X-Helm-Verdict" in response.headers:
        return _OK, f"{client_url} is governed by HELM ({response.status_code})"
    upstream = ctx.env_value(target, "HELM_UPSTREAM_URL") if ctx.deployment is not None else None
    same = upstream and upstream.rstrip("/") == client_url.rstrip("/")
    return _PROBLEM, (f"{client_url} answered {response.status_code} without X-HELM-Governed"
                      + (": it is the release's HELM_UPSTREAM_URL" if same else "") + "; no receipt was written")  # fmt: skip
