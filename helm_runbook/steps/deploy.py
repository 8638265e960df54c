"""Install, rollout and restart steps against a target (``helm upgrade --install``,
``kubectl rollout status``, ``kubectl rollout restart``)."""

from __future__ import annotations

import time
from typing import Any

from helm_runbook.record import record
from helm_runbook.results import StepReport, progress
from helm_runbook.targets.base import Target


def install(
    target: Target, values: dict[str, Any], *, release: str = "helm-ai-kernel"
) -> StepReport:
    """``helm upgrade --install``: the chart's guards run first; the pod is scheduled at once."""
    start = time.perf_counter()
    rendered = target.install(values, release)
    rows: list[list[object]] = [[obj["kind"], obj["metadata"]["name"]] for _, obj in rendered.objects
                                if obj["kind"] != "Pod"]  # fmt: skip
    result = StepReport("install", f"helm upgrade --install {release}", ["kind", "name"], rows,
                        summary=f"release {release} installed on the {target.name} target",
                        seconds=time.perf_counter() - start,
                        values={"objects": len(rows), "kinds": sorted(set(rendered.kinds()) - {"Pod"})})  # fmt: skip
    record(result)
    return result


def wait_for_rollout(target: Target, *, timeout: float = 60.0) -> StepReport:
    """Wait for the readiness probe, with a progress bar; a pod that exits fails with its log."""
    start = time.perf_counter()
    with progress("waiting for readiness", "probe") as bar:
        waited = target.wait_ready(timeout, on_poll=lambda n: bar.update(1))
    ports = target.forwarded_ports()
    rows: list[list[object]] = [[name, f"127.0.0.1:{port}"] for name, port in ports.items()]
    result = StepReport("rollout", "deployment successfully rolled out", ["container port", "forwarded to"], rows,
                        summary=f"ready after {waited:.2f}s", seconds=time.perf_counter() - start,
                        values={"ready_after_s": round(waited, 3), "ports": sorted(ports)})  # fmt: skip
    record(result)
    return result


def restart_pod(target: Target, *, timeout: float = 60.0) -> StepReport:
    """``kubectl rollout restart``: SIGTERM, a new pod on the same PVC, ready again."""
    start = time.perf_counter()
    before = target.restarts
    target.restart_pod()
    waited = target.wait_ready(timeout)
    result = StepReport("restart", "rollout restart", ["pod", "ready after"], [[f"pod {target.restarts}", f"{waited:.2f}s"]],
                        summary=f"pod {before} → pod {target.restarts}", seconds=time.perf_counter() - start,
                        values={"restarts": target.restarts})  # fmt: skip
    record(result)
    return result
