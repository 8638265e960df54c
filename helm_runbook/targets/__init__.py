"""Deployment targets: ``local`` (the rendered pod in a bubblewrap sandbox) and ``kube`` (a real
cluster through a kube context). Steps see only the ``Target`` protocol."""

from __future__ import annotations

from pathlib import Path

from helm_runbook.targets.base import Target
from helm_runbook.targets.local import LocalTarget


def open_target(target: str, workdir: str | Path) -> Target:
    """``local`` attaches to (or creates) the local target in ``workdir``; anything else names a
    kube context (``CONTEXT`` or ``CONTEXT/NAMESPACE``; the context's namespace by default)."""
    if target == "local":
        return LocalTarget.open(Path(workdir).resolve())
    from helm_runbook.targets.kube import KubeTarget  # the kube extra is only needed here

    context, _, namespace = target.partition("/")
    return KubeTarget(context, namespace=namespace, workdir=Path(workdir).resolve())


__all__ = ["LocalTarget", "Target", "open_target"]
