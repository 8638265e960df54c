"""A pod restart on the local target, split where its time goes: stop (SIGTERM until the runtime
and its relay have exited), start (volumes, init container, relay, sandbox launch) and ready (the
readiness probe first answering 200). Each restart is real: a new sandbox, the same PVC, a
receipt written before it and read back after it. The release is the guide's production install
with the signed policy of runbooks 03-06 (a rule with a CEL expression, compiled at every start).
Prints medians; asserts nothing.

.venv/bin/python benchmarks/pod_restart.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from helm_runbook.chart import CHART_DIR, render
from helm_runbook.steps.policy import publish_signed_policy, trust_public_key
from helm_runbook.steps.presets import STAND_IN_MODELS, production_values
from helm_runbook.targets.local import LocalTarget

ADMIN = "adm-" + "7" * 40
HEADERS = {
    "Authorization": f"Bearer {ADMIN}",
    "X-Helm-Tenant-ID": "default",
    "X-Helm-Principal-ID": "system-admin",
}
DENY = {"action": "EXECUTE_TOOL", "resource": "unknown.tool.kind", "context": {"session_id": "b"}}


def production(target: LocalTarget) -> None:
    """The guide's production install from existing Secrets (what runbooks 03-08 restart)."""
    target.create_secret(
        "helm-auth", {"HELM_ADMIN_API_KEY": ADMIN, "HELM_SERVICE_API_KEY": "svc-" + "8" * 40}
    )
    target.create_secret("helm-signing", {"signing-key": "c3" * 32})
    publish_signed_policy(target, [dict(STAND_IN_MODELS)], config_map="helm-policy")
    policy = {"source": {"mountedFile": {"existingConfigMap": "helm-policy"}},
              "signature": {"required": True, "publicKey": trust_public_key(target)}}  # fmt: skip
    target.apply(render(CHART_DIR, production_values(upstream_port=9, policy=policy)))


def restart(target: LocalTarget) -> tuple[float, float, float]:
    """One ``kubectl rollout restart`` timed in its three parts; the receipt must survive it."""
    receipt = httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=DENY).json()
    t0 = time.perf_counter()
    target.stop_pod()
    t1 = time.perf_counter()
    target.restarts += 1
    target.start_pod()
    t2 = time.perf_counter()
    target.wait_ready()
    t3 = time.perf_counter()
    listed = httpx.get(target.url() + "/api/v1/receipts", headers=HEADERS).json()["receipts"]
    if listed[-1]["receipt_id"] != receipt["receipt_id"]:
        raise SystemExit("a receipt acknowledged before the restart is missing after it")
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with tempfile.TemporaryDirectory() as tmp:
        target = LocalTarget(Path(tmp))
        production(target)
        try:
            target.start_pod()
            target.wait_ready()
            samples = [restart(target) for _ in range(n)]
        finally:
            target.close()
    stop, start, ready = (statistics.median(part) for part in zip(*samples, strict=True))
    total = statistics.median(sum(s) for s in samples)
    print(f"pod restart, production release with a signed CEL policy, median of {n}:")
    print(f"  stop  (SIGTERM to exit, relay stopped): {stop * 1000:7.0f} ms")
    print(f"  start (volumes, init, relay, launch):   {start * 1000:7.0f} ms")
    print(f"  ready (launch to readiness 200):        {ready * 1000:7.0f} ms")
    print(f"  total:                                  {total * 1000:7.0f} ms")
    print(f"command: .venv/bin/python benchmarks/pod_restart.py {n}")


if __name__ == "__main__":
    main()
