"""Start over: the local target back to an empty namespace (no Secrets, no release, no receipts).

Shown where a newcomer begins (runbook 02). Resetting is explicit: without ``confirm`` the step
only says what the target holds and how to reset it, so re-running a runbook never loses state.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from helm_runbook.errors import StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.targets import resolve_workdir
from helm_runbook.targets.local import LocalTarget


def reset_target(target: str, workdir: str | Path, *, confirm: bool = False) -> StepReport:
    """With ``confirm``: stop the local target's pod and delete its state (Secrets, ConfigMaps,
    release, PVC directories with their receipts and root.key). Without: report what is there."""
    start = time.perf_counter()
    if target != "local" and not confirm:
        report = StepReport("reset", "nothing to reset on a cluster", ["target", "state"], [[target, "kept"]],
                            seconds=time.perf_counter() - start, values={"reset": False})  # fmt: skip
        record(report)
        return report
    if target != "local":
        raise StepFailed("reset", expected="the local target", seen=f"target {target!r}",
                         fix="on a cluster, reset deliberately: helm uninstall <release>; kubectl delete "
                             "secret/<names> pvc/<release>-data (receipts and root.key go with the PVC)")  # fmt: skip
    path = resolve_workdir(workdir)
    existing = LocalTarget.open(path) if (path / "state.json").exists() else None
    held: list[list[object]] = [] if existing is None else [
        ["Secrets", ", ".join(sorted(existing.secrets)) or "none"],
        ["ConfigMaps", ", ".join(sorted(existing.config_maps)) or "none"],
        ["release", existing.release.release if existing.release else "none"],
        ["pod", "running" if existing.pod is not None else "stopped"],
    ]  # fmt: skip
    if not confirm:
        rows: list[list[object]] = held or [["state", "empty: nothing to reset"]]
        report = StepReport("reset", "local target kept as it is", ["object", "present"], rows,
                            summary="set fresh_start = True to start from an empty target",
                            seconds=time.perf_counter() - start, values={"reset": False, "empty": not held})  # fmt: skip
        record(report)
        return report
    if existing is not None:
        existing.close()
    shutil.rmtree(path, ignore_errors=True)
    report = StepReport("reset", "local target reset to an empty namespace", ["object", "deleted"],
                        held or [["state", "was already empty"]], summary=f"{path.name} is empty",
                        seconds=time.perf_counter() - start, values={"reset": True, "empty": True})  # fmt: skip
    record(report)
    return report


__all__ = ["reset_target"]
