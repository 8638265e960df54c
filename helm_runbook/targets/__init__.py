"""Deployment targets: ``local`` (the rendered pod in a bubblewrap sandbox) and ``kube`` (a real
cluster through a kube context). Steps see only the ``Target`` protocol."""

from __future__ import annotations

from pathlib import Path

from helm_runbook.targets.base import Target
from helm_runbook.targets.local import LocalTarget

CHECKOUT = Path(__file__).resolve().parents[2]


def resolve_workdir(workdir: str | Path) -> Path:
    """A relative ``workdir`` is relative to the repository (where ``notebooks/`` lives), not
    to the current directory: papermill from the repository root, ``make runbook`` and
    JupyterLab in ``notebooks/`` all find the same state. Outside a checkout, the current
    directory."""
    path = Path(workdir)
    if path.is_absolute():
        return path
    base = CHECKOUT if (CHECKOUT / "notebooks").is_dir() else Path.cwd()
    return (base / path).resolve()


def open_target(target: str, workdir: str | Path, *, release: str = "helm-ai-kernel") -> Target:
    """``local`` attaches to (or creates) the local target in ``workdir``; anything else names a
    kube context (``CONTEXT`` or ``CONTEXT/NAMESPACE``; the context's namespace by default),
    whose release ``release`` is found by Helm's instance label."""
    if target == "local":
        return LocalTarget.open(resolve_workdir(workdir))
    from helm_runbook.targets.kube import KubeTarget  # the kube extra is only needed here

    context, _, namespace = target.partition("/")
    return KubeTarget(
        context, namespace=namespace, workdir=resolve_workdir(workdir), release=release
    )


def reach(target: str) -> None:
    """TargetUnavailable, within seconds, when ``target`` (``CONTEXT`` or ``CONTEXT/NAMESPACE``)
    cannot be used: no kubeconfig, no such context, an API server that refuses, hangs, fails
    TLS or rejects the credentials. The local target is always there."""
    if target == "local":
        return
    from helm_runbook.targets.kube import connect

    connect(target.partition("/")[0]).close()  # type: ignore[no-untyped-call]


__all__ = ["LocalTarget", "Target", "open_target", "reach", "resolve_workdir"]
