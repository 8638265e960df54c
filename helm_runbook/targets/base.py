"""What every target offers the steps: the same calls for the local sandbox and a real cluster.

Steps take a ``Target`` and never ask which one it is, so the code path above the target is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from helm_runbook.chart.manifests import RenderedRelease


@dataclass(frozen=True)
class Uninstalled:
    """What ``helm uninstall`` did: the values the release was installed with (to reinstall it),
    the objects deleted and those a ``keep`` resource policy left, as ``Kind/name``."""

    values: dict[str, Any]
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Revision:
    """One entry of ``helm history``: what was applied (values, manifest) and how it ended.

    ``status`` is Helm's: ``deployed`` (the live one), ``superseded`` (replaced by a later
    upgrade or rollback), ``failed`` (its rollout did not become ready in time)."""

    number: int
    status: str
    description: str
    updated: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    manifest: list[dict[str, Any]] = field(default_factory=list)


KEEP = ("helm.sh/resource-policy", "keep")  # the annotation helm uninstall honours


def kept_on_uninstall(obj: dict[str, Any]) -> bool:
    """Whether ``helm uninstall`` leaves ``obj`` in place."""
    return bool((obj.get("metadata", {}).get("annotations") or {}).get(KEEP[0]) == KEEP[1])


class Target(Protocol):
    """A namespace with one release of the chart (``kubectl``/``helm`` verbs named per method)."""

    namespace: str
    workdir: Path
    restarts: int

    @property
    def name(self) -> str:
        """``local`` or ``kube:<context>``: shown in step summaries."""

    @property
    def secrets(self) -> Mapping[str, Mapping[str, bytes]]:
        """``kubectl get secret NAME``: Secret data by name, decoded."""

    @property
    def config_maps(self) -> Mapping[str, Mapping[str, str]]:
        """``kubectl get configmap NAME``: ConfigMap data by name."""

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl create secret generic NAME --from-literal=...``; refuses an existing name."""

    def replace_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl replace`` of an existing Secret's data; running pods keep what they read."""

    def apply_config_map(self, name: str, data: dict[str, str]) -> None:
        """``kubectl apply`` of a ConfigMap; mounted copies follow without a restart."""

    @property
    def config_sync_s(self) -> float:
        """How long a ConfigMap change may take to reach a running pod's mounted files (the
        kubelet's sync): what a step waits at most before the runtime can see a change."""

    def wait_config_synced(self, name: str | None = None) -> float:
        """Wait until a running pod mounts ConfigMap ``name``'s current data where the target can
        tell (the local kubelet); returns the seconds waited (0 where it cannot)."""

    def save(self) -> None:
        """Persist what a later notebook needs to attach again."""

    def install(self, values: dict[str, Any], release: str = "helm-ai-kernel") -> RenderedRelease:
        """``helm upgrade --install RELEASE``; returns the rendered release."""

    def uninstall(self, release: str = "helm-ai-kernel") -> Uninstalled:
        """``helm uninstall RELEASE``: the pod stops, the release's objects go except those with
        ``helm.sh/resource-policy: keep`` (the data claim)."""

    def upgrade(
        self, values: dict[str, Any], release: str = "helm-ai-kernel", *, timeout: float = 60.0
    ) -> RenderedRelease:
        """``helm upgrade RELEASE --wait --timeout``: a new revision, ``deployed`` once ready;
        marked ``failed`` (and StepFailed raised) when it is not ready within ``timeout``."""

    def history(self, release: str = "helm-ai-kernel") -> list[Revision]:
        """``helm history RELEASE``: every revision, oldest first."""

    def rollback(
        self, release: str = "helm-ai-kernel", revision: int | None = None, *, timeout: float = 60.0
    ) -> Revision:
        """``helm rollback RELEASE [REVISION] --wait``: a new revision applying ``revision``'s
        manifest (the previous one when None); returns the new revision."""

    @property
    def deployment(self) -> dict[str, Any]:
        """The release's Deployment as a plain dict (what ``kubectl get deploy -o json`` prints)."""

    def wait_ready(
        self, timeout: float = 60.0, on_poll: Callable[[int], None] | None = None
    ) -> float:
        """``kubectl rollout status``; returns the seconds waited."""

    def readiness_failures(self, timeout: float = 60.0) -> list[str]:
        """``kubectl describe pod``: once the container runs, the readiness probe's failure
        messages, ``failureThreshold`` of them in a row; empty when it passes instead."""

    def running_pod(self) -> str:
        """``kubectl get pods``: the release's running pod, named so that another pod never
        has the same name."""

    def restart_pod(self) -> object:
        """``kubectl rollout restart``: a new pod on the same PVC."""

    def forwarded_ports(self) -> dict[str, int]:
        """``kubectl port-forward``: named container port → 127.0.0.1 port."""

    def url(self, port_name: str = "http") -> str:
        """The 127.0.0.1 URL of a named container port."""

    def logs(self) -> str:
        """``kubectl logs deploy/RELEASE``: the runtime container's log."""

    def claim_phase(self, claim: str) -> str | None:
        """``kubectl get pvc CLAIM``: its phase (``Bound``), or None when it does not exist."""

    def close(self) -> None:
        """Release local resources (the local pod, port-forwards); cluster objects stay."""
