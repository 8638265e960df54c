"""``make helm-chart-smoke``: lint, the default render, every ``ci/`` scenario rendered and
schema-validated, and every guard refusing with its message (upstream's helm_chart_smoke, in
process through Helm's Go SDK). Also runs ``helm lint``/``helm template`` when a ``helm`` binary
is on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.manifests import validate
from helm_runbook.chart.sdk import lint, render
from helm_runbook.chart.values import merge_values, nested
from helm_runbook.errors import ChartError
from helm_runbook.harness.results import Table

SEED = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
PRODUCTION = {"helm": {"production": True, "signing": {"key": SEED},
                       "auth": {"adminAPIKey": "smoke-admin", "serviceAPIKey": "smoke-service"},
                       "proxy": {"upstream": "https://llm.example.internal/v1"}}}  # fmt: skip
DEFAULT_KINDS = {
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "Pod",
}


@dataclass(frozen=True)
class GuardCase:
    name: str
    values: dict[str, Any]
    message: str  # a fragment of the refusal the operator sees


def _prod(**dotted: Any) -> dict[str, Any]:
    return merge_values(PRODUCTION, nested({k.replace("__", "."): v for k, v in dotted.items()}))


GUARD_CASES: tuple[GuardCase, ...] = (
    GuardCase("production without signing key", merge_values(PRODUCTION, nested({"helm.signing.key": ""})),
              "helm.production=true requires helm.signing.key (64 hex) or helm.signing.existingSecret"),
    GuardCase("production without admin key", merge_values(PRODUCTION, nested({"helm.auth.adminAPIKey": ""})),
              "requires helm.auth.adminAPIKey or helm.auth.existingSecret"),
    GuardCase("production without service key", merge_values(PRODUCTION, nested({"helm.auth.serviceAPIKey": ""})),
              "requires helm.auth.serviceAPIKey or helm.auth.existingSecret"),
    GuardCase("production with no key material at all", nested({"helm.production": True}),
              "production never generates key material"),
    GuardCase("empty tenant", _prod(helm__auth__tenantID=""), "helm.auth.tenantID"),
    GuardCase("empty principal", _prod(helm__auth__principalID=""), "helm.auth.principalID"),
    GuardCase("postgres with inline credentials", _prod(helm__storage__type="postgres"),
              "requires helm.storage.postgres.existingSecret"),
    GuardCase("postgres with weak sslMode",
              _prod(helm__storage__type="postgres", helm__storage__postgres__existingSecret="db",
                    helm__storage__postgres__sslMode="disable"), "sslMode require, verify-ca or verify-full"),
    GuardCase("postgres with the bundled subchart",
              _prod(helm__storage__type="postgres", helm__storage__postgres__existingSecret="db",
                    postgresql__enabled=True), "bundled postgresql subchart"),
    GuardCase("controlplane without url",
              _prod(helm__policy__source__kind="controlplane", helm__policy__signature__required=True,
                    helm__policy__signature__publicKey=SEED), "requires helm.policy.source.controlplane.url"),
    GuardCase("controlplane without required signatures",
              _prod(helm__policy__source__kind="controlplane", helm__policy__source__controlplane__url="https://cp"),
              "requires helm.policy.signature.required=true"),
    GuardCase("controlplane bearerToken without token",
              _prod(helm__policy__source__kind="controlplane", helm__policy__source__controlplane__url="https://cp",
                    helm__policy__source__controlplane__auth__mode="bearerToken",
                    helm__policy__signature__required=True, helm__policy__signature__publicKey=SEED),
              "auth.mode=bearerToken requires"),
    GuardCase("signature required without trust key", nested({"helm.policy.signature.required": True}),
              "signature.required=true requires helm.policy.signature.publicKey or helm.policy.signature.existingSecret"),
    GuardCase("non-hex trust key", nested({"helm.policy.signature.publicKey": "not-hex"}), "helm.policy.signature.publicKey"),
    GuardCase("non-hex signing key", nested({"helm.signing.key": "zz" * 32}), "helm.signing.key"),
    GuardCase("unpinned runtimeInit image", nested({"runtimeInit.image": "alpine:3"}), "runtimeInit.image"),
    GuardCase("missing runAsUser", nested({"podSecurityContext.runAsUser": None}), "runAsUser"),
    GuardCase("semantic threshold above 10000", nested({"helm.guardian.semanticThreatEscalationBP": 10001}),
              "helm.guardian.semanticThreatEscalationBP"),
    GuardCase("onInvalidUpdate=allow", nested({"helm.policy.failClosed.onInvalidUpdate": "allow"}),
              "helm.policy.failClosed.onInvalidUpdate"),
    GuardCase("agent-safety baseline disabled in production", _prod(helm__policy__agentSafety__baseline__enabled=False),
              "requires helm.policy.agentSafety.baseline.enabled=true"),
    GuardCase("agent-safety guard disabled in production", _prod(helm__policy__agentSafety__denyUnknownTools=False),
              "requires all agentSafety fail-closed guards enabled; set helm.policy.agentSafety.{denyUnknownTools}=true"),
    GuardCase("replicas > 1 on SQLite", nested({"replicaCount": 2}), "replicaCount=2 requires helm.storage.type=postgres"),
    GuardCase("postgres without host or Secret (any mode)", nested({"helm.storage.type": "postgres"}),
              "helm.storage.type=postgres requires helm.storage.postgres.existingSecret (a Secret with DATABASE_URL) or helm.storage.postgres.host"),
    GuardCase("replicas > 1 on one ReadWriteOnce claim",
              nested({"replicaCount": 2, "helm.storage.type": "postgres", "helm.storage.postgres.existingSecret": "db"}),
              "replicaCount=2 with persistence.enabled=true and accessModes ReadWriteOnce would mount one single-writer claim"),
    GuardCase("ServiceMonitor without metrics", nested({"helm.metrics.serviceMonitor.enabled": True}),
              "serviceMonitor.enabled=true requires helm.metrics.enabled=true"),
    GuardCase("bad persistence size", nested({"persistence.size": "lots"}), "persistence.size"),
    GuardCase("unknown image key", nested({"image.tagg": "v1"}), "image.tagg: is not a value of this chart; did you mean image.tag?"),
    GuardCase("misspelled helm.production", nested({"helm.productoin": True}), "did you mean helm.production?"),
    GuardCase("empty tenant in any mode", nested({"helm.auth.tenantID": ""}), "helm.auth.tenantID: must not be empty"),
    GuardCase("upstream emergency stop", nested({"helm.emergencyStop.enabled": True}),
              "helm.emergencyStop.enabled: this chart does not support the emergency-stop fence"),
    GuardCase("upstream launchpad app", nested({"launchpadApps.hermes.enabled": True}),
              "launchpadApps.hermes.enabled: this chart does not support launchpad apps"),
)  # fmt: skip


def ci_files() -> list[Path]:
    return sorted((CHART_DIR / "ci").glob("*-values.yaml"))


@dataclass
class SmokeResult:
    rows: list[list[object]] = field(default_factory=list)
    failures: int = 0

    def check(self, step: str, ok: bool, detail: str) -> None:
        self.rows.append([step, "PASS" if ok else "FAIL", detail])
        self.failures += not ok


def run(chart: Path = CHART_DIR) -> SmokeResult:
    result = SmokeResult()
    for name, values in (("default", None), ("production", PRODUCTION)):
        linted = lint(chart, values)
        result.check(
            f"lint {name}",
            linted.ok,
            "; ".join(linted.errors) or f"{len(linted.messages)} info messages",
        )
    default = render(chart)
    kinds = set(default.kinds())
    result.check("default render kinds", kinds == DEFAULT_KINDS, ", ".join(sorted(kinds)))
    for path in ci_files():
        values = yaml.safe_load(path.read_text()) or {}
        try:
            release = render(chart, values)
        except ChartError as exc:
            result.check(f"ci/{path.name}", False, str(exc))
            continue
        report = validate(release)
        detail = f"{len(report.checked)} valid, unchecked: {', '.join(report.unchecked) or 'none'}"
        result.check(f"ci/{path.name}", report.ok, detail if report.ok else str(report.failed))
    for case in GUARD_CASES:
        try:
            render(chart, case.values)
        except ChartError as exc:
            result.check(f"guard: {case.name}", case.message in str(exc), exc.message[:160])
        else:
            result.check(f"guard: {case.name}", False, "rendered, but must be refused")
    helm_bin = shutil.which("helm")
    if helm_bin:
        for args in (["lint", str(chart)], ["template", "helm-ai-kernel", str(chart)]):
            proc = subprocess.run([helm_bin, *args], capture_output=True, text=True)
            result.check(
                f"helm {args[0]} (binary)", proc.returncode == 0, proc.stderr.strip()[-160:] or "ok"
            )
    return result


def main() -> int:
    start = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - start
    table = Table("helm-chart-smoke", ["check", "result", "detail"], result.rows, ok=result.failures == 0,
                  summary=f"{len(result.rows)} checks, {result.failures} failed, {elapsed:.2f}s")  # fmt: skip
    print(table)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
