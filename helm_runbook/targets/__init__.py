"""Deployment targets: ``local`` (the rendered pod in a bubblewrap sandbox) and ``kube``."""

from __future__ import annotations

from pathlib import Path

from helm_runbook.errors import TargetUnavailable
from helm_runbook.targets.local import LocalTarget


def open_target(target: str, workdir: str | Path) -> LocalTarget:
    """``local`` attaches to (or creates) the local target in ``workdir``; anything else names a kube context."""
    if target == "local":
        return LocalTarget.open(Path(workdir).resolve())
    raise TargetUnavailable(
        f"kube context {target!r}: the kube target is not part of this build yet",
        fix='run with target="local", or use the equivalent helm/kubectl commands shown beside each step',
    )
