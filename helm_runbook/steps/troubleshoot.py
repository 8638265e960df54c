"""The troubleshooting lab behind runbook 06: for each row of the deployment guide's table, inject
the fault into a healthy release, show the symptom as an operator meets it, and apply the guide's
fix and show it working. ``diagnose(target)`` (between symptom and fix) is the operator's tool.

Every method is one runbook step and returns a ``StepReport``; a symptom that does not appear, or
a fix that does not work, raises ``StepFailed`` like any other step.
"""

from __future__ import annotations

import time
from typing import Any

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import render
from helm_runbook.chart.values import merge_values, nested
from helm_runbook.errors import ChartError, RuntimeAPIError, StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport, shortened
from helm_runbook.standins.mock_upstream import MockUpstreamServer
from helm_runbook.standins.process import free_port
from helm_runbook.steps.deploy import restart_pod
from helm_runbook.steps.policy import (
    governed_request,
    publish_signed_policy,
    trust_public_key,
    wake_reconcile,
)
from helm_runbook.steps.presets import HOSTNAME_ARGS, READ_HOSTNAME, STAND_IN_MODELS
from helm_runbook.steps.secrets import prepare_secrets
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient

FAULTS = (
    "render",
    "readiness",
    "service-key",
    "policy-delivery",
    "policy-signature",
    "persistence",
    "client-url",
)
LLM = STAND_IN_MODELS
Rows = list[list[object]]


class TroubleshootingLab:
    """A healthy release on ``target`` and the faults of the guide's troubleshooting table."""

    def __init__(self, target: Target, *, release: str = "helm-ai-kernel", config_map: str = "helm-policy",
                 auth_secret: str = "helm-auth", signing_secret: str = "helm-signing") -> None:  # fmt: skip
        self.target, self.release, self.config_map = target, release, config_map
        self.auth_secret, self.signing_secret = auth_secret, signing_secret
        self.upstream_port = free_port()
        self.upstream: MockUpstreamServer | None = None
        self.pending_values: dict[str, Any] | None = None  # what the operator is about to install
        self.client_url: str | None = None  # where the operator's OpenAI client sends requests
        self.actions: list[dict[str, Any]] = [LLM]
        self.published: StepReport | None = None  # the last policy published, for the wake hint

    # -- the healthy release ---------------------------------------------------------------------

    def values(self, **dotted: Any) -> dict[str, Any]:
        """The lab's healthy values, with ``dotted`` overrides (``persistence__enabled=False``)."""
        base = {
            "helm": {
                "signing": {"existingSecret": self.signing_secret},
                "auth": {"existingSecret": self.auth_secret},
                "proxy": {"upstream": f"http://127.0.0.1:{self.upstream_port}/v1"},
                "policy": {
                    # a long poll keeps a ConfigMap change unserved until the wake hint, every run
                    "source": {
                        "pollInterval": "1h",
                        "mountedFile": {"existingConfigMap": self.config_map},
                    },
                    "signature": {"required": True, "publicKey": trust_public_key(self.target)},
                },
            },
            "persistence": {"enabled": True},
        }
        return merge_values(base, nested({k.replace("__", "."): v for k, v in dotted.items()}))

    def setup(self) -> StepReport:
        """Secrets, a signed policy, the stand-in upstream and a healthy release, ready."""
        start = time.perf_counter()
        prepare_secrets(
            self.target, signing_secret=self.signing_secret, auth_secret=self.auth_secret
        )
        self.actions = [LLM]
        publish_signed_policy(self.target, self.actions, config_map=self.config_map)
        if self.upstream is None:
            self.upstream = MockUpstreamServer(port=self.upstream_port).__enter__()
        self._install()
        return self._report("lab.setup", "a healthy release to break", [["release", self.release], ["upstream", self.upstream.url]],
                            start, {"ready": True})  # fmt: skip

    def _install(self, **dotted: Any) -> float:
        self.target.install(self.values(**dotted), self.release)
        return self.target.wait_ready(60)

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    # -- the three phases of a row -----------------------------------------------------------------

    def inject(self, fault: str) -> StepReport:
        """Break the release (or the operator's input) the way the guide's row describes."""
        start = time.perf_counter()
        what = self._phase("inject", fault)()
        return self._report(
            f"fault.{fault}", "fault injected", [["fault", what]], start, {"fault": fault}
        )

    def symptom(self, fault: str) -> StepReport:
        """What the operator sees; raises StepFailed when the symptom does not appear."""
        start = time.perf_counter()
        rows, seen = self._phase("symptom", fault)()
        if not seen:
            raise StepFailed(f"symptom.{fault}", expected=f"the symptom of {fault!r}", seen=str(rows)[:400],
                             fix="the fault did not take effect: check the inject step's output")  # fmt: skip
        return self._report(f"symptom.{fault}", "symptom as the operator sees it", rows, start,
                            {"fault": fault, "seen": {str(what): str(value) for what, value in rows}},
                            columns=["what", "seen"])  # fmt: skip

    def fix(self, fault: str) -> StepReport:
        """Apply the guide's fix and show the symptom gone (each fix raises StepFailed if not)."""
        start = time.perf_counter()
        rows = self._phase("fix", fault)()
        return self._report(f"fix.{fault}", "fix applied and verified", rows, start,
                            {"fault": fault, "fixed": True}, columns=["fix", "result"])  # fmt: skip

    def _phase(self, phase: str, fault: str) -> Any:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        return getattr(self, f"_{phase}_{fault.replace('-', '_')}")

    # -- production render fails ------------------------------------------------------------------

    def _inject_render(self) -> str:
        self.pending_values = {"helm": {"production": True}}
        return "production values without signing or API-key material"

    def _symptom_render(self) -> tuple[Rows, bool]:
        seen = _refusal(lambda: render(CHART_DIR, self.pending_values))
        return [["helm template", seen]], "helm.signing" in seen and "helm.auth" in seen

    def _fix_render(self) -> Rows:
        self.pending_values = merge_values(self.pending_values or {}, self.values())
        rendered = render(CHART_DIR, self.pending_values)
        return [
            [
                "helm.signing.existingSecret / helm.auth.existingSecret set",
                f"{len(rendered.objects)} objects render",
            ]
        ]

    # -- readiness fails ----------------------------------------------------------------------------

    def _inject_readiness(self) -> str:
        self.target.install(self.values(probes__readiness__httpGet__port=9090), self.release)
        return "readiness probe on port 9090 (the runtime's health port is 8081)"

    def _symptom_readiness(self) -> tuple[Rows, bool]:
        """The pod runs and serves its liveness probe, and its readiness probe fails
        ``failureThreshold`` times in a row: ``kubectl describe pod``'s events, not a timeout
        (a pod that is merely slow to start shows no failures once it serves)."""
        failures = self.target.readiness_failures(60)
        rows: Rows = [["kubectl get pods", "Running, 0/1 Ready" if failures else "Ready"],
                      ["readiness probe failures in a row", len(failures)],
                      ["kubectl describe pod", failures[-1] if failures else "no Unhealthy event"]]  # fmt: skip
        return rows, bool(failures)

    def _fix_readiness(self) -> Rows:
        return [["probes.readiness.httpGet.port=health", f"ready after {self._install():.2f}s"]]

    # -- the wake hint is unauthorized --------------------------------------------------------------

    def _inject_service_key(self) -> str:
        admin = self.target.secrets[self.auth_secret]["HELM_ADMIN_API_KEY"].decode()
        self._install(helm__auth__existingSecret="", helm__auth__adminAPIKey=admin)
        return "auth from an inline admin key only: no service API key in the release"

    def _symptom_service_key(self) -> tuple[Rows, bool]:
        seen = _refusal(lambda: wake_reconcile(self.target, auth_secret=self.auth_secret))
        return [["POST /internal/policy/reconcile", seen]], "401" in seen

    def _fix_service_key(self) -> Rows:
        self._install()
        status = wake_reconcile(self.target, expect="no_change", auth_secret=self.auth_secret)
        return [
            [
                f"helm.auth.existingSecret={self.auth_secret}",
                f"wake hint → {status.values['reconcile_status']}",
            ]
        ]

    # -- the ConfigMap changed, the decisions did not -----------------------------------------------

    def _inject_policy_delivery(self) -> str:
        self.actions = [LLM, READ_HOSTNAME]
        self.published = publish_signed_policy(
            self.target, self.actions, config_map=self.config_map
        )
        return f"signed policy change applied to ConfigMap {self.config_map}, no wake hint sent"

    def _symptom_policy_delivery(self) -> tuple[Rows, bool]:
        verdict = self._hostname_verdict("DENY")  # governed_request raises if it is not DENY
        return [
            ["ConfigMap allows file_read /etc/hostname", "yes"],
            ["runtime decides", verdict],
        ], True

    def _fix_policy_delivery(self) -> Rows:
        status = wake_reconcile(
            self.target, expect="ok", auth_secret=self.auth_secret, published=self.published
        )
        return [
            ["wake hint", status.values["reconcile_status"]],
            ["runtime decides", self._hostname_verdict("ALLOW")],
        ]

    # -- reconcile fails with a signature error -----------------------------------------------------

    def _inject_policy_signature(self) -> str:
        self.published = publish_signed_policy(
            self.target,
            [*self.actions, {"action": "shell"}],
            config_map=self.config_map,
            sign=False,
        )
        return f"ConfigMap {self.config_map} changed without re-signing"

    def _symptom_policy_signature(self) -> tuple[Rows, bool]:
        status = wake_reconcile(
            self.target,
            expect="validate_error",
            auth_secret=self.auth_secret,
            published=self.published,
        )
        reason = str(status.values["reason"])
        return [
            ["reconcile_status", status.values["reconcile_status"]],
            ["reason", reason],
        ], "signature" in reason

    def _fix_policy_signature(self) -> Rows:
        self.actions = [*self.actions, {"action": "shell"}]
        self.published = publish_signed_policy(
            self.target, self.actions, config_map=self.config_map
        )
        status = wake_reconcile(
            self.target, expect="ok", auth_secret=self.auth_secret, published=self.published
        )
        return [
            ["re-signed with the trusted key", "yes"],
            ["wake hint", status.values["reconcile_status"]],
        ]

    # -- receipts disappear after a restart ---------------------------------------------------------

    def _inject_persistence(self) -> str:
        self._install(persistence__enabled=False)
        return "persistence.enabled=false: /data is an emptyDir"

    def _symptom_persistence(self) -> tuple[Rows, bool]:
        before = self._receipt_count()
        self._governed_shell()
        written = self._receipt_count()
        restart_pod(self.target)
        after = self._receipt_count()
        rows: Rows = [["receipts before the request", before], ["after a governed request", written],
                      ["after a pod restart", after]]  # fmt: skip
        return rows, written > before and after == 0

    def _fix_persistence(self) -> Rows:
        self._install()
        self._governed_shell()
        before = self._receipt_count()
        restart_pod(self.target)
        after = self._receipt_count()
        if after != before:
            raise StepFailed("fix.persistence", expected=f"{before} receipts after the restart", seen=str(after),
                             fix="check the PVC is bound and mounted at /data")  # fmt: skip
        return [
            ["persistence.enabled=true", "PVC mounted at /data"],
            ["receipts before/after restart", f"{before}/{after}"],
        ]

    # -- calls bypass HELM --------------------------------------------------------------------------

    def _inject_client_url(self) -> str:
        assert self.upstream is not None, "run setup() first"
        self.client_url = self.upstream.url
        return f"OpenAI client base URL {self.client_url} (the provider, not HELM)"

    def _symptom_client_url(self) -> tuple[Rows, bool]:
        rows, governed = self._chat_through_client()
        return rows, not governed

    def _fix_client_url(self) -> Rows:
        self.client_url = f"{self.target.url()}/v1"
        rows, governed = self._chat_through_client()
        if not governed:
            raise StepFailed("fix.client-url", expected="X-HELM-Governed on the response", seen=str(rows),
                             fix="point the client at the service or ingress URL of HELM")  # fmt: skip
        return rows

    # -- helpers -----------------------------------------------------------------------------------

    def _hostname_verdict(self, expect: str) -> str:
        decision = governed_request(self.target, "file_read", args=HOSTNAME_ARGS, expect=expect,
                                    auth_secret=self.auth_secret)  # fmt: skip
        return str(decision.values["verdict"])

    def _governed_shell(self) -> None:
        """One governed request (a receipt), with the verdict the current policy gives."""
        verdict = "ALLOW" if {"action": "shell"} in self.actions else "DENY"
        governed_request(
            self.target,
            "shell",
            expect=verdict,
            auth_secret=self.auth_secret,
            session_id="persistence",
        )

    def _receipt_count(self) -> int:
        with RuntimeClient.for_target(self.target, auth_secret=self.auth_secret) as client:
            return len(client.receipts())

    def _chat_through_client(self) -> tuple[Rows, bool]:
        """One chat completion through the client's base URL; governed when HELM answers it."""
        assert self.client_url is not None
        before = self._receipt_count()
        body = {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}]}
        with RuntimeClient(self.client_url) as client:
            response = client.send("POST", "/chat/completions", auth="none", json=body)
        governed = response.headers.get("X-HELM-Governed") == "true"
        after = self._receipt_count()
        rows: list[list[object]] = [["client base URL", self.client_url], ["status", response.status_code],
                                    ["X-HELM-Governed", response.headers.get("X-HELM-Governed", "absent")],
                                    ["receipts written", after - before]]  # fmt: skip
        return rows, governed and after > before

    def _report(self, step: str, title: str, rows: list[list[object]], start: float, values: dict[str, object],
                columns: list[str] | None = None) -> StepReport:  # fmt: skip
        report = StepReport(
            step,
            title,
            columns or ["what", "value"],
            rows,
            seconds=time.perf_counter() - start,
            values=values,
        )
        record(report)
        return report


def _refusal(action: Any) -> str:
    """The message an expected failure produced ("" when the action went through)."""
    try:
        action()
    except (ChartError, RuntimeAPIError, StepFailed) as exc:
        return shortened(str(exc).splitlines()[0], 1000)  # every guard of a refusal, bounded
    return ""


__all__ = ["FAULTS", "TroubleshootingLab"]
