"""``make runbook``: the main job. Runs every runbook that exists against the bundled runtime,
then builds the docs site.

Until the notebook runbooks land (issue 6) this runs the deployment guide's smoke path as plain
steps against ``helm-ai-kernel serve`` started as a child process with the chart's default
(deny-all) policy: health on both ports, a governed request, receipts listed and verified offline
with the trust root, a restart, and the receipts still there. A failed step exits 1 with the
step, what was expected, what was seen and the fix.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from helm_runbook.errors import StepFailed
from helm_runbook.process import RuntimeProcess
from helm_runbook.results import Table
from helm_runbook.verify import verify_receipts

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"

# The chart's default ConfigMap: runtime_actions [] means every governed action is denied (D5).
DEFAULT_SERVE_POLICY = """\
name = "helm-chart"
profile = "kubernetes"
reference_pack = "./reference-pack.json"

[server]
bind = "0.0.0.0"
port = 8080

[receipts]
store = "sqlite"
path = "/data/helm.db"
"""
DEFAULT_PACK = {"pack_id": "helm-chart-reference-pack", "version": 1, "runtime_actions": []}


def _expect(step: str, ok: bool, *, expected: str, seen: str, fix: str) -> None:
    if not ok:
        raise StepFailed(step, expected=expected, seen=seen, fix=fix)


def smoke_local(workdir: Path) -> list[tuple[str, str, float]]:
    """The guide's smoke path against a local runtime; returns (step, detail, seconds) rows."""
    policy_dir = workdir / "policy"
    policy_dir.mkdir(parents=True, exist_ok=True)
    (policy_dir / "serve-policy.toml").write_text(DEFAULT_SERVE_POLICY)
    (policy_dir / "reference-pack.json").write_text(json.dumps(DEFAULT_PACK))
    data = workdir / "data"
    admin_key = os.environ.get("HELM_RUNBOOK_ADMIN_API_KEY") or secrets.token_urlsafe(24)
    env = {"HELM_ADMIN_API_KEY": admin_key, "HELM_SERVICE_API_KEY": secrets.token_urlsafe(24)}
    headers = {
        "Authorization": f"Bearer {admin_key}",
        "X-Helm-Tenant-ID": "default",
        "X-Helm-Principal-ID": "system-admin",
    }
    rows: list[tuple[str, str, float]] = []
    state: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], str]) -> None:
        start = time.monotonic()
        detail = fn()
        rows.append((name, detail, time.monotonic() - start))
        print(f"  ok  {name:<28} {detail}", flush=True)

    runtime = RuntimeProcess(policy_dir / "serve-policy.toml", data, env=env)
    step(
        "runtime.start", lambda: f"ready on :{runtime.start().port} (health :{runtime.health_port})"
    )
    try:

        def health() -> str:
            for url in (f"{runtime.health_url}/health", f"{runtime.url}/healthz"):
                r = httpx.get(url, timeout=5)
                _expect(
                    "smoke.health",
                    r.status_code == 200,
                    expected=f"200 from {url}",
                    seen=f"{r.status_code} {r.text[:80]}",
                    fix="check HELM_HEALTH_PORT and the pod logs",
                )
            return "8081-style /health OK, API /healthz ok"

        def governed() -> str:
            body = {
                "principal": "agent.smoke",
                "action": "EXECUTE_TOOL",
                "resource": "unknown.tool.kind",
                "context": {"session_id": "agent.smoke"},
            }
            r = httpx.post(f"{runtime.url}/api/v1/evaluate", json=body, headers=headers, timeout=5)
            doc = r.json()
            _expect(
                "smoke.evaluate",
                r.status_code == 200 and doc.get("verdict") == "DENY",
                expected="200 with verdict DENY (chart default: runtime_actions [])",
                seen=f"{r.status_code} {doc}",
                fix="send the admin key and the tenant/principal headers",
            )
            state["receipt_id"] = doc["receipt_id"]
            return f"DENY {doc['reason_code']} receipt {doc['receipt_id'][:18]}…"

        def receipts_listed() -> str:
            anonymous = httpx.get(f"{runtime.url}/api/v1/receipts", timeout=5)
            _expect(
                "smoke.receipts.auth",
                anonymous.status_code == 401,
                expected="401 without auth",
                seen=str(anonymous.status_code),
                fix="protected routes must fail closed",
            )
            listed = httpx.get(f"{runtime.url}/api/v1/receipts", headers=headers, timeout=5).json()
            state["receipts"] = listed["receipts"]
            ids = [r["receipt_id"] for r in listed["receipts"]]
            _expect(
                "smoke.receipts",
                state["receipt_id"] in ids,
                expected="the new receipt listed",
                seen=f"{len(ids)} receipts",
                fix="check the data volume is writable",
            )
            return f"401 without auth; {len(ids)} listed with auth"

        def verified() -> str:
            public_key = (data / "root.pub").read_text().strip()
            report = verify_receipts(state["receipts"], public_key)
            report.raise_for_failures()
            return (
                f"{report.receipts} receipts verify with trust root {report.public_key_fingerprint}"
            )

        def restart() -> str:
            key_before = (data / "root.key").read_bytes()
            runtime.stop()
            runtime.start()
            listed = httpx.get(f"{runtime.url}/api/v1/receipts", headers=headers, timeout=5).json()
            ids = [r["receipt_id"] for r in listed["receipts"]]
            _expect(
                "smoke.restart",
                state["receipt_id"] in ids and (data / "root.key").read_bytes() == key_before,
                expected="receipts and root.key unchanged after restart",
                seen=f"{len(ids)} receipts",
                fix="set persistence.enabled=true and check the PVC is Bound",
            )
            return f"{len(ids)} receipts still listed; root.key unchanged"

        step("smoke.health", health)
        step("smoke.evaluate", governed)
        step("smoke.receipts", receipts_listed)
        step("receipts.verify", verified)
        step("smoke.restart", restart)
    finally:
        runtime.stop()
    return rows


def build_docs() -> float:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(BUILD / "site")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    if result.returncode != 0:
        raise StepFailed("docs.build", expected="mkdocs build --strict exits 0",
                         seen=result.stderr.strip()[-800:], fix="fix the warnings mkdocs printed")  # fmt: skip
    return time.monotonic() - start


def main() -> int:
    BUILD.mkdir(exist_ok=True)
    workdir = BUILD / "runbook-local"
    if workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    print("runbook: deployment-guide smoke path against the bundled runtime", flush=True)
    try:
        rows = smoke_local(workdir)
        seconds = build_docs()
        rows.append(("docs.build", f"site in {BUILD / 'site'}", seconds))
        print(f"  ok  {'docs.build':<28} mkdocs build --strict in {seconds:.1f}s", flush=True)
    except StepFailed as exc:
        print(f"\nFAILED step {exc.step}\n  expected: {exc.expected}\n  seen:     {exc.seen}\n  fix:      {exc.fix}",
              file=sys.stderr)  # fmt: skip
        return 1
    table = Table(
        "runbook", ["step", "detail", "seconds"], [(n, d, f"{s:.2f}") for n, d, s in rows]
    )
    report = [
        {"name": n, "status": "passed", "detail": d, "duration_s": round(s, 3)} for n, d, s in rows
    ]
    (BUILD / "runbook-report.json").write_text(json.dumps(report, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
