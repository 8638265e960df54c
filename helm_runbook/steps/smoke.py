"""Smoke checks of the deployment guide, and receipt verification with the trust root.

The admin key is read from the target's auth Secret (as an operator would with kubectl), never
passed as a parameter; the trust root is derived from the signing Secret's seed.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from nacl.signing import SigningKey

from helm_runbook.chart.values import PLACEHOLDER_UPSTREAM, is_placeholder_upstream
from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.formats.keys import Signer
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.targets.base import Target
from helm_runbook.tools.client import RuntimeClient
from helm_runbook.tools.verify import ReceiptVerification
from helm_runbook.tools.verify import verify_receipts as verify_offline


def _check(
    rows: list[list[object]], step: str, ok: bool, *, expected: str, seen: str, fix: str
) -> None:
    rows.append([step, expected, seen, "PASS" if ok else "FAIL"])
    if not ok:
        raise StepFailed(step, expected=expected, seen=seen, fix=fix)


def smoke_check(
    target: Target, *, auth_secret: str = "helm-auth", tenant: str = "default", principal: str = "system-admin",
    proxy_model: str | None = None,
) -> StepReport:  # fmt: skip
    """Health on both ports, a governed DENY for an unknown tool, receipts behind auth, and (with
    ``proxy_model``) one chat completion through the governed proxy."""
    with RuntimeClient.for_target(
        target, auth_secret=auth_secret, tenant=tenant, principal=principal
    ) as client:
        return smoke(client, proxy_model=proxy_model, upstream=_release_upstream(target))  # fmt: skip


def _release_upstream(target: Target) -> str | None:
    """The installed release's proxy upstream (HELM_UPSTREAM_URL), None with the proxy off."""
    try:
        container = target.deployment["spec"]["template"]["spec"]["containers"][0]
    except (TargetUnavailable, KeyError, IndexError):
        return None
    env = {e.get("name"): e.get("value") for e in container.get("env", [])}
    return (
        str(env.get("HELM_UPSTREAM_URL") or "")
        if env.get("HELM_ENABLE_OPENAI_PROXY") == "1"
        else None
    )


def smoke(
    client: RuntimeClient, *, proxy_model: str | None = None, upstream: str | None = None
) -> StepReport:
    """The smoke checks through a client (a port-forward, an ingress, or the app in-process).
    ``upstream``: the release's HELM_UPSTREAM_URL when known; the chart's placeholder is named
    (a warning row: the release is healthy, its proxy points at no real upstream)."""
    start = time.perf_counter()
    rows: list[list[object]] = []
    placeholder = bool(upstream) and is_placeholder_upstream(str(upstream))
    if placeholder:
        rows.append(["smoke.proxy.upstream", "a real upstream behind the proxy",
                     f"the chart's placeholder {upstream}: allowed chat calls will fail (502); "
                     "set helm.proxy.upstream=https://<your-upstream>/v1", "WARN"])  # fmt: skip
    if client.health_url:
        r = client.health("health")
        _check(rows, "smoke.health.8081", (r.status_code, r.text) == (200, "OK"), expected="200 OK on the health port /health",
               seen=f"{r.status_code} {r.text[:40]}", fix="inspect HELM_HEALTH_PORT and the pod logs")  # fmt: skip
    r = client.health("api")
    api_health = r.status_code  # the guide's `curl -fsS http://127.0.0.1:8080/health`
    _check(rows, "smoke.health.8080", r.status_code == 200, expected="200 on the API port /health",
           seen=str(r.status_code), fix="port-forward the API port 8080")  # fmt: skip
    body = {"principal": "agent.smoke", "action": "EXECUTE_TOOL", "resource": "unknown.tool.kind",
            "context": {"session_id": "agent.smoke"}}  # fmt: skip
    decision: dict[str, Any] = client.evaluate(body)
    _check(rows, "smoke.evaluate", decision.get("verdict") == "DENY", expected="DENY for an unknown tool",
           seen=f"{decision.get('verdict')} {decision.get('reason_code')}",
           fix="an unknown tool must be denied: check the release's runtimeActions policy")  # fmt: skip
    r = client.send("GET", "/api/v1/receipts", auth="none")
    _check(rows, "smoke.receipts.unauthenticated", r.status_code == 401, expected="401 without auth",
           seen=str(r.status_code), fix="protected routes must fail closed")  # fmt: skip
    r = client.send("GET", "/api/v1/receipts", headers={"X-Helm-Tenant-ID": None})
    _check(rows, "smoke.receipts.no-tenant", r.status_code == 403, expected="403 without the tenant header",
           seen=str(r.status_code), fix="tenant-scoped routes must be server-bound")  # fmt: skip
    ids = [rec["receipt_id"] for rec in client.receipts(session_id="agent.smoke")]
    _check(rows, "smoke.receipts.listed", decision.get("receipt_id") in ids, expected="the new receipt is listed",
           seen=f"{len(ids)} receipts in session agent.smoke", fix="check the data volume is writable")  # fmt: skip
    values: dict[str, object] = {
        **({"proxy_upstream_placeholder": True} if placeholder else {}),
        "health_api": api_health,
        "evaluate_verdict": decision.get("verdict"),
        "evaluate_reason": decision.get("reason_code"),
    }
    if proxy_model:
        r = client.chat(proxy_model, "smoke", principal="agent.smoke")
        _check(rows, "smoke.proxy", r.status_code == 200 and r.headers.get("x-helm-verdict") == "ALLOW",
               expected="200 through the governed proxy with X-Helm-Verdict: ALLOW",
               seen=f"{r.status_code} {r.headers.get('x-helm-verdict')} {r.text[:120]}",
               fix=_proxy_fix(r.status_code, r.text, upstream))  # fmt: skip
        values["proxy_verdict"] = r.headers.get("x-helm-verdict")
        values["proxy_receipt"] = bool(r.headers.get("x-helm-receipt-id"))
    headers = (f'-H "Authorization: Bearer $ADMIN_KEY" -H "X-Helm-Tenant-ID: {client.credentials.tenant}" '
               f'-H "X-Helm-Principal-ID: {client.credentials.principal}"')  # fmt: skip
    command = "\n".join([
        *([f"curl -fsS {client.health_url}/health"] if client.health_url else []),
        f"curl -fsS {client.api_url}/health",
        f"curl -fsS -X POST {client.api_url}/api/v1/evaluate {headers} \\\n  -d {shlex.quote(json.dumps(body, separators=(',', ':')))}",
        f"curl -sS -o /dev/null -w '%{{http_code}}' {client.api_url}/api/v1/receipts   # 401",
        f"curl -fsS {headers} '{client.api_url}/api/v1/receipts?session_id=agent.smoke'",
    ])  # fmt: skip
    result = StepReport("smoke", "deployment guide smoke checks", ["check", "expected", "seen", "result"], rows,
                        summary=f"{len(rows)} checks passed", seconds=time.perf_counter() - start, command=command,
                        values=values)  # fmt: skip
    record(result)
    return result


def _proxy_fix(status: int, text: str, upstream: str | None) -> str:
    """What to do about a failed proxy call: a 502/503 from the kernel means its upstream."""
    if status in (502, 503) and (
        "helm_upstream_error" in text or "upstream_not_configured" in text
    ):
        if upstream is None or is_placeholder_upstream(upstream):
            return (f"the proxy's upstream did not answer: if helm.proxy.upstream is still the chart's placeholder "
                    f"{PLACEHOLDER_UPSTREAM}, the proxy points at no real upstream; set "
                    "helm.proxy.upstream=https://<your-upstream>/v1 (helm upgrade --reuse-values --set ...)")  # fmt: skip
        return f"the proxy's upstream {upstream} did not answer: check it is reachable from the pod"
    return "allow LLM_INFERENCE in runtimeActions and point helm.proxy.upstream at the upstream"


def verify_receipts(
    target: Target, *, auth_secret: str = "helm-auth", signing_secret: str = "helm-signing",
    tenant: str = "default", principal: str = "system-admin", at_least: int = 0,
) -> ReceiptVerification:  # fmt: skip
    """List every receipt and verify signatures and chains offline against the trust root
    derived from the signing Secret (never the key the receipts carry). ``at_least``: the number
    verified earlier (before a restart, an upgrade), which must all still be there."""
    start = time.perf_counter()
    seed = target.secrets.get(signing_secret, {}).get("signing-key")
    if seed is None:
        raise StepFailed("receipts.verify", expected=f"Secret {signing_secret}", seen="not found",
                         fix="run runbook 02-secret-setup first")  # fmt: skip
    public = Signer(SigningKey(bytes.fromhex(seed.decode()))).public_key_hex
    with RuntimeClient.for_target(
        target, auth_secret=auth_secret, tenant=tenant, principal=principal
    ) as client:
        receipts = client.receipts()  # fmt: skip
    report = verify_offline(receipts, public)
    report.raise_for_failures()
    if report.receipts < at_least:
        raise StepFailed("receipts.verify", expected=f"at least the {at_least} receipts verified before",
                         seen=f"{report.receipts} receipts",
                         fix="receipts disappeared: check persistence.enabled and that the pod mounts the same PVC")  # fmt: skip

    report.seconds = time.perf_counter() - start  # the listing included
    report.command = (
        f"helm-runbook verify-receipts {client.api_url}/api/v1/receipts --public-key {public}"
    )
    record(report)
    return report
