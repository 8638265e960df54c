"""Smoke checks of the deployment guide, and receipt verification with the trust root.

The admin key is read from the target's auth Secret (as an operator would with kubectl), never
passed as a parameter; the trust root is derived from the signing Secret's seed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from nacl.signing import SigningKey

from helm_runbook.errors import StepFailed
from helm_runbook.record import record
from helm_runbook.results import StepReport
from helm_runbook.runtime.keys import Signer
from helm_runbook.targets.base import Target
from helm_runbook.verify import ReceiptVerification, load_receipts
from helm_runbook.verify import verify_receipts as verify_offline


def _headers(target: Target, auth_secret: str, tenant: str, principal: str) -> dict[str, str]:
    key = target.secrets.get(auth_secret, {}).get("HELM_ADMIN_API_KEY")
    if key is None:
        raise StepFailed("smoke.auth", expected=f"Secret {auth_secret} with HELM_ADMIN_API_KEY",
                         seen="not found", fix="run the secret setup runbook (02) first")  # fmt: skip
    return {
        "Authorization": f"Bearer {key.decode()}",
        "X-Helm-Tenant-ID": tenant,
        "X-Helm-Principal-ID": principal,
    }


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
    headers = _headers(target, auth_secret, tenant, principal)
    return smoke_urls(target.url("http"), target.url("health"), headers, proxy_model=proxy_model)


def smoke_urls(
    api: str, health: str | None, headers: dict[str, str], *, proxy_model: str | None = None
) -> StepReport:
    """The smoke checks against URLs (a port-forward or an ingress); ``headers`` carry the admin key."""
    start = time.perf_counter()
    rows: list[list[object]] = []
    with httpx.Client(timeout=10) as http:
        if health:
            r = http.get(f"{health}/health")
            _check(rows, "smoke.health.8081", (r.status_code, r.text) == (200, "OK"), expected="200 OK on the health port /health",
                   seen=f"{r.status_code} {r.text[:40]}", fix="inspect HELM_HEALTH_PORT and the pod logs")  # fmt: skip
        r = http.get(f"{api}/health")
        _check(rows, "smoke.health.8080", r.status_code == 200, expected="200 on the API port /health (D1)",
               seen=str(r.status_code), fix="port-forward the API port 8080")  # fmt: skip
        body = {"principal": "agent.smoke", "action": "EXECUTE_TOOL", "resource": "unknown.tool.kind",
                "context": {"session_id": "agent.smoke"}}  # fmt: skip
        response = http.post(f"{api}/api/v1/evaluate", headers=headers, json=body)
        decision: dict[str, Any] = (
            response.json() if response.headers.get("content-type", "").endswith("json") else {}
        )
        _check(rows, "smoke.evaluate", decision.get("verdict") == "DENY", expected="DENY for an unknown tool",
               seen=f"{response.status_code} {decision.get('verdict')} {decision.get('reason_code') or decision.get('detail')}",
               fix="send the admin key with the tenant/principal headers; check runtimeActions")  # fmt: skip
        r = http.get(f"{api}/api/v1/receipts")
        _check(rows, "smoke.receipts.unauthenticated", r.status_code == 401, expected="401 without auth",
               seen=str(r.status_code), fix="protected routes must fail closed")  # fmt: skip
        r = http.get(
            f"{api}/api/v1/receipts",
            headers={k: v for k, v in headers.items() if "Tenant" not in k},
        )
        _check(rows, "smoke.receipts.no-tenant", r.status_code == 403, expected="403 without the tenant header",
               seen=str(r.status_code), fix="tenant-scoped routes must be server-bound")  # fmt: skip
        listed = http.get(
            f"{api}/api/v1/receipts",
            params={"session_id": "agent.smoke", "limit": 1000},
            headers=headers,
        ).json()
        ids = [rec["receipt_id"] for rec in listed.get("receipts", [])]
        _check(rows, "smoke.receipts.listed", decision.get("receipt_id") in ids, expected="the new receipt is listed",
               seen=f"{len(ids)} receipts in session agent.smoke", fix="check the data volume is writable")  # fmt: skip
        values: dict[str, object] = {
            "evaluate_verdict": decision.get("verdict"),
            "evaluate_reason": decision.get("reason_code"),
        }
        if proxy_model:
            r = http.post(f"{api}/v1/chat/completions", headers={"X-Helm-Principal": "agent.smoke"},
                          json={"model": proxy_model, "messages": [{"role": "user", "content": "smoke"}]})  # fmt: skip
            _check(rows, "smoke.proxy", r.status_code == 200 and r.headers.get("x-helm-verdict") == "ALLOW",
                   expected="200 through the governed proxy with X-Helm-Verdict: ALLOW",
                   seen=f"{r.status_code} {r.headers.get('x-helm-verdict')} {r.text[:120]}",
                   fix="allow LLM_INFERENCE in runtimeActions and point helm.proxy.upstream at the upstream")  # fmt: skip
            values["proxy_verdict"] = r.headers.get("x-helm-verdict")
            values["proxy_receipt"] = bool(r.headers.get("x-helm-receipt-id"))
    result = StepReport("smoke", "deployment guide smoke checks", ["check", "expected", "seen", "result"], rows,
                        summary=f"{len(rows)} checks passed", seconds=time.perf_counter() - start, values=values)  # fmt: skip
    record(result)
    return result


def verify_receipts(
    target: Target, *, auth_secret: str = "helm-auth", signing_secret: str = "helm-signing",
    tenant: str = "default", principal: str = "system-admin",
) -> ReceiptVerification:  # fmt: skip
    """List every receipt and verify signatures and chains offline against the trust root
    derived from the signing Secret (never the key the receipts carry)."""
    start = time.perf_counter()
    seed = target.secrets.get(signing_secret, {}).get("signing-key")
    if seed is None:
        raise StepFailed("receipts.verify", expected=f"Secret {signing_secret}", seen="not found",
                         fix="run the secret setup runbook (02) first")  # fmt: skip
    public = Signer(SigningKey(bytes.fromhex(seed.decode()))).public_key_hex
    headers = _headers(target, auth_secret, tenant, principal)
    receipts = load_receipts(f"{target.url()}/api/v1/receipts", headers=headers)
    report = verify_offline(receipts, public)
    report.raise_for_failures()

    values: dict[str, object] = {"receipts": report.receipts, "sessions": report.sessions,
                                 "failures": len(report.failures), "trust_root": report.public_key_fingerprint}  # fmt: skip
    record(
        StepReport(
            "receipts.verify",
            "offline verification",
            [],
            seconds=time.perf_counter() - start,
            values=values,
        )
    )
    return report
