"""Install, rollout and restart steps against a target (``helm upgrade --install``,
``kubectl rollout status``, ``kubectl rollout restart``)."""

from __future__ import annotations

import time
from typing import Any

from helm_runbook.chart.values import helm_command
from helm_runbook.errors import StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport, progress
from helm_runbook.targets.base import Target


def install(
    target: Target, values: dict[str, Any], *, release: str = "helm-ai-kernel"
) -> StepReport:
    """``helm upgrade --install``: the chart's guards run first; the pod is scheduled at once."""
    start = time.perf_counter()
    rendered = target.install(values, release)
    rows: list[list[object]] = [[obj["kind"], obj["metadata"]["name"]] for _, obj in rendered.objects
                                if obj["kind"] != "Pod"]  # fmt: skip
    command = helm_command(values, release=release, namespace=target.namespace)
    result = StepReport("install", f"helm upgrade --install {release}", ["kind", "name"], rows,
                        summary=f"release {release} installed on the {target.name} target",
                        seconds=time.perf_counter() - start, command=command,
                        values={"objects": len(rows), "kinds": sorted(set(rendered.kinds()) - {"Pod"}),
                                "command": command})  # fmt: skip
    record(result)
    return result


def wait_for_rollout(target: Target, *, timeout: float = 60.0) -> StepReport:
    """Wait for the readiness probe, with a progress bar; a pod that exits fails with its log."""
    start = time.perf_counter()
    with progress("waiting for readiness", "probe") as bar:
        waited = target.wait_ready(timeout, on_poll=lambda n: bar.update(1))
    ports = target.forwarded_ports()
    rows: list[list[object]] = [[name, f"127.0.0.1:{port}"] for name, port in ports.items()]
    name = target.deployment["metadata"]["name"]
    remote = {p["name"]: p["containerPort"] for c in target.deployment["spec"]["template"]["spec"]["containers"]
              for p in c.get("ports", []) if p.get("name")}  # fmt: skip
    # The command as an operator types it (the guide's LOCAL:REMOTE with LOCAL = REMOTE); the
    # free ports this run took are in the table, not in a command to copy.
    forwards = " ".join(f"{remote[port]}:{remote[port]}" for port in ports if port in remote)
    command = (f"kubectl rollout status deploy/{name} --namespace {target.namespace}\n"
               f"kubectl port-forward svc/{name} {forwards} --namespace {target.namespace}")  # fmt: skip
    result = StepReport("rollout", "deployment successfully rolled out", ["container port", "forwarded to"], rows,
                        summary=f"ready after {waited:.2f}s", seconds=time.perf_counter() - start, command=command,
                        values={"ready_after_s": round(waited, 3), "ports": sorted(ports)})  # fmt: skip
    record(result)
    return result


def running_pod(target: Target, *, same_as: StepReport | None = None) -> StepReport:
    """``kubectl get pods``: the release's running pod; with ``same_as`` (an earlier
    ``running_pod`` step) it must be that same pod: nothing restarted it in between."""
    start = time.perf_counter()
    pod = target.running_pod()
    before = str(same_as.values["pod"]) if same_as is not None else None
    if before is not None and pod != before:
        raise StepFailed("pod", expected=f"the same pod as before: {before}", seen=f"another pod: {pod}",
                         fix="a policy change must not restart the pod: the chart has no checksum/config, and "
                             "the runtime reconciles the mounted files live")  # fmt: skip
    rows: list[list[object]] = [["pod", pod]]
    if before:
        rows.append(["same pod as before", "yes"])
    name = target.deployment["metadata"]["name"]
    result = StepReport("pod", "running pod", ["field", "value"], rows,
                        summary=f"still {pod}: not restarted" if before else pod,
                        seconds=time.perf_counter() - start,
                        command=f"kubectl get pods --namespace {target.namespace} -l app.kubernetes.io/instance={name}",
                        values={"pod": pod, "same_as_before": before is not None})  # fmt: skip
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
                        command=f"kubectl rollout restart deploy/{target.deployment['metadata']['name']} --namespace {target.namespace}",
                        values={"restarts": target.restarts})  # fmt: skip
    record(result)
    return result


def uninstall_and_reinstall(
    target: Target, *, release: str = "helm-ai-kernel", timeout: float = 60.0
) -> StepReport:
    """``helm uninstall`` then the same install again: the kept data claim carries root.key and
    the receipts across, and the init container accepts root.key only if the Secret still matches."""
    start = time.perf_counter()
    gone = target.uninstall(release)
    claims = [name for name in gone.kept if name.startswith("PersistentVolumeClaim/")]
    if not claims:
        raise StepFailed("uninstall", expected="the data PersistentVolumeClaim kept by helm uninstall",
                         seen=f"kept: {gone.kept or 'nothing'}; deleted: {', '.join(gone.deleted)}",
                         fix="install with persistence.enabled=true and persistence.keepOnUninstall=true")  # fmt: skip
    target.install(gone.values, release)
    waited = target.wait_ready(timeout)
    command = f"helm uninstall {release} --namespace {target.namespace}\n" + helm_command(
        gone.values, release=release, namespace=target.namespace
    )
    rows: list[list[object]] = [[name, "deleted, then installed again"] for name in gone.deleted]
    rows += [[name, "kept (helm.sh/resource-policy: keep), mounted again"] for name in gone.kept]
    result = StepReport("uninstall", f"helm uninstall {release}, then install again", ["object", "what happened"],
                        rows, summary=f"{len(gone.kept)} kept, {len(gone.deleted)} deleted; ready after {waited:.2f}s",
                        seconds=time.perf_counter() - start, command=command,
                        values={"kept": gone.kept, "deleted": len(gone.deleted), "ready_after_s": round(waited, 3)})  # fmt: skip
    record(result)
    return result
