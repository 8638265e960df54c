"""The ``kube`` target: the same steps against a real cluster through a kube context.

The project's only ``kubernetes`` import outside the runtime's crd source. Secrets and ConfigMaps
go through the official client, the release through Helm's Go SDK (``helm upgrade --install``),
rollout is polled from the Deployment's status, restarts patch the pod template like ``kubectl
rollout restart``, and named ports are reached through the client's port-forward, served on
127.0.0.1 for the steps above (which never see a difference from the local target).
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.sdk import (
    install_release,
    manifest_objects,
    release_history,
    rollback_release,
    uninstall_release,
    upgrade_release,
)
from helm_runbook.errors import RenderError, StepFailed, TargetUnavailable
from helm_runbook.targets.base import Revision, Uninstalled, kept_on_uninstall

_V = TypeVar("_V", bytes, str)
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
INSTANCE_LABEL = "app.kubernetes.io/instance"
#: Seconds to connect to the API server, and for the first answer when the context is opened:
#: an unreachable cluster fails in seconds, not after the client's retries.
CONNECT_TIMEOUT_S = 3.0
PROBE_TIMEOUT_S = 3.0
DEFAULT_KUBECONFIG = "~/.kube/config"


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The file(s) a kubeconfig setting names, as kubectl reads them (``KUBECONFIG`` is a
    ``:``-separated list; unset: ``~/.kube/config``)."""
    raw = kubeconfig if kubeconfig is not None else os.environ.get("KUBECONFIG", "")
    return [p for p in raw.split(os.pathsep) if p] or [os.path.expanduser(DEFAULT_KUBECONFIG)]


def _unreachable(context: str, server: str, exc: BaseException) -> TargetUnavailable:
    """A transport failure (refused, timeout, TLS, DNS) as TargetUnavailable naming the context,
    the server and what to check."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).split(": ", 1)[-1] if isinstance(reason, Exception) else str(reason)
    if isinstance(reason, urllib3.exceptions.SSLError) or "CERTIFICATE" in text.upper():
        check = ("the cluster's CA (certificate-authority-data) and the server name in the kubeconfig; "
                 f"`kubectl --context {context} cluster-info` shows the same error")  # fmt: skip
    elif isinstance(reason, urllib3.exceptions.TimeoutError) or "timed out" in text:
        check = (f"that the API server at {server} is up and reachable from here (VPN, firewall); "
                 f"`kubectl --context {context} cluster-info`")  # fmt: skip
    else:
        check = (f"that the API server at {server} is up and the kubeconfig's server URL is right; "
                 f"`kubectl --context {context} cluster-info`")  # fmt: skip
    return TargetUnavailable(
        f"kube context {context!r}: cannot reach the API server {server} ({text[:200]})", fix=check
    )


class _ClassifiedApiClient(client.ApiClient):
    """The official client whose transport failures name the context and server
    (TargetUnavailable) and whose requests never wait forever to connect."""

    context = ""

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = (CONNECT_TIMEOUT_S, None)
        try:
            return super().call_api(*args, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise _unreachable(self.context, str(self.configuration.host), exc) from exc

    def response_deserialize(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().response_deserialize(*args, **kwargs)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise _rejected(self.context, str(self.configuration.host), exc) from exc
            raise


def _rejected(context: str, server: str, exc: ApiException) -> TargetUnavailable:
    """A 401 or 403 from the API server as TargetUnavailable naming the context and server."""
    if exc.status == 401:
        return TargetUnavailable(f"kube context {context!r}: the API server {server} answered 401 {exc.reason}: "
                                 "it does not accept these credentials",
                                 fix=f"renew the credentials of context {context} (an expired token or certificate); "
                                 f"`kubectl --context {context} auth whoami` shows who you are")  # fmt: skip
    return TargetUnavailable(f"kube context {context!r}: the API server {server} answered 403 {exc.reason}: "
                             "these credentials may not do what the step needs",
                             fix=f"check RBAC: `kubectl --context {context} auth can-i --list` shows what they may do; "
                             "the runbooks need get, list, create and patch on secrets, configmaps and deployments")  # fmt: skip


def connect(context: str, kubeconfig: str | None = None) -> client.ApiClient:
    """An API client for ``context`` of the kubeconfig, checked by one bounded request: a
    missing or unreadable kubeconfig names the path(s) tried and ``KUBECONFIG``; an API server
    that refuses, hangs, fails TLS or rejects the credentials (401/403) is TargetUnavailable
    naming the context, the server URL and what to check."""
    paths = kubeconfig_paths(kubeconfig)
    tried = ", ".join(paths)
    source = (
        "KUBECONFIG"
        if (kubeconfig or os.environ.get("KUBECONFIG"))
        else "the default, KUBECONFIG unset"
    )
    missing = [p for p in paths if not os.path.isfile(p)]
    if len(missing) == len(paths):
        raise TargetUnavailable(f"kube context {context!r}: no kubeconfig at {tried} ({source})",
                                fix="set KUBECONFIG to your cluster's kubeconfig file (`kubectl config view` "
                                "must show the context), or use target=local")  # fmt: skip
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=os.pathsep.join(paths) if len(paths) > 1 else paths[0],
                                context=context, client_configuration=configuration)  # fmt: skip
    except (
        config.ConfigException,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ) as exc:
        known = _context_names(kubeconfig)
        hint = (f"the contexts are {', '.join(known)} (`kubectl config get-contexts` lists them)"
                if known else "`kubectl config get-contexts` lists the names")  # fmt: skip
        raise TargetUnavailable(f"kube context {context!r}: cannot use the kubeconfig {tried} ({source}): "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                                fix=f"{hint}; or use target=local") from exc  # fmt: skip
    import urllib3.util

    configuration.retries = urllib3.util.Retry(
        total=2, connect=1, read=0, status=0, backoff_factor=0.1
    )
    api = _ClassifiedApiClient(configuration)
    api.context = context
    server = str(configuration.host)
    try:
        client.CoreApi(api).get_api_versions(_request_timeout=(CONNECT_TIMEOUT_S, PROBE_TIMEOUT_S))
    except ApiException as exc:
        if exc.status is not None and exc.status < 500 and exc.status not in (401, 403):
            return api  # it answered (a proxy or emulator may not serve discovery): reachable
        api.close()
        if exc.status in (401, 403):
            raise _rejected(context, server, exc) from exc
        raise TargetUnavailable(f"kube context {context!r}: the API server {server} answered {exc.status} {exc.reason}",
                                fix=f"`kubectl --context {context} cluster-info` must work from here") from exc  # fmt: skip
    except TargetUnavailable:
        api.close()
        raise
    return api


class ObjectView(Mapping[str, Mapping[str, _V]]):
    """``target.secrets[name]`` / ``target.config_maps[name]`` read through the API, as ``kubectl
    get`` shows them (Secret values base64-decoded)."""

    def __init__(self, kind: str, read: Callable[[str], Any], list_all: Callable[[], Any],
                 decode: Callable[[str], _V]) -> None:  # fmt: skip
        self._kind, self._read_api, self._list = kind, read, list_all
        self._decode: Callable[[str], _V] = decode

    def _read(self, name: str) -> dict[str, _V] | None:
        try:
            obj = self._read_api(name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise TargetUnavailable(f"cannot read {self._kind} {name}: {exc.status} {exc.reason}",
                                    fix=f"check RBAC: the runbook needs get on {self._kind.lower()}s") from exc  # fmt: skip
        return {k: self._decode(v) for k, v in (obj.data or {}).items()}

    def __getitem__(self, name: str) -> dict[str, _V]:
        data = self._read(name)
        if data is None:
            raise KeyError(name)
        return data

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._read(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter([str(_meta(o).name) for o in self._list().items])

    def __len__(self) -> int:
        return len(self._list().items)


def _meta(obj: Any) -> client.V1ObjectMeta:
    meta: client.V1ObjectMeta = obj.metadata
    return meta


KUBELET_CONFIG_SYNC_S = 120.0  # the kubelet's default sync period (60 s) plus its cache TTL (60 s)


@dataclass
class KubeTarget:
    """A namespace of a real cluster, reached through ``context`` of the kubeconfig.

    ``api`` takes a ready ``ApiClient`` (tests point one at an API emulator); otherwise the
    kubeconfig's ``context`` is loaded, as ``kubectl --context`` would.
    """

    context: str
    namespace: str = ""
    workdir: Path = Path("build/kube-target")
    api: client.ApiClient | None = None
    kubeconfig: str | None = None
    release: str = "helm-ai-kernel"
    restarts: int = 0
    _forwards: dict[str, int] = field(default_factory=dict)
    _deployment_name: str = ""

    def __post_init__(self) -> None:
        if self.api is None:
            self.kubeconfig = self.kubeconfig or os.environ.get(
                "KUBECONFIG"
            )  # read now, not at import
            self.api = connect(self.context, self.kubeconfig)
        if not self.namespace:
            self.namespace = _context_namespace(self.kubeconfig, self.context)
        self._client: client.ApiClient = self.api
        self.core = client.CoreV1Api(self._client)
        self.apps = client.AppsV1Api(self._client)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return f"kube:{self.context}"

    @property
    def secrets(self) -> ObjectView[bytes]:
        return ObjectView("Secret", lambda n: self.core.read_namespaced_secret(n, self.namespace),
                          lambda: self.core.list_namespaced_secret(self.namespace), base64.b64decode)  # fmt: skip

    @property
    def config_maps(self) -> ObjectView[str]:
        return ObjectView("ConfigMap", lambda n: self.core.read_namespaced_config_map(n, self.namespace),
                          lambda: self.core.list_namespaced_config_map(self.namespace), str)  # fmt: skip

    def for_release(self, release: str | None = None, namespace: str | None = None) -> KubeTarget:
        """The same context and connection reading another release (found by Helm's
        ``app.kubernetes.io/instance`` label) or namespace."""
        return KubeTarget(self.context, namespace=namespace or self.namespace, workdir=self.workdir, api=self._client,
                          kubeconfig=self.kubeconfig, release=release or self.release)  # fmt: skip

    def save(self) -> None:
        """State lives in the cluster."""

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl create secret generic NAME --from-literal=...`` (values never logged)."""
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, namespace=self.namespace), type="Opaque",
                               data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})  # fmt: skip
        try:
            self.core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise StepFailed(f"secrets.{name}", expected=f"no Secret {name} yet", seen="it already exists",
                                 fix=f"kubectl -n {self.namespace} delete secret {name}, or reuse it") from exc  # fmt: skip
            raise TargetUnavailable(f"cannot create Secret {name}: {exc.status} {exc.reason}",
                                    fix="check RBAC: the runbook needs create on secrets") from exc  # fmt: skip

    def replace_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl create secret generic NAME ... --dry-run=client -o yaml | kubectl replace -f -``."""
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, namespace=self.namespace), type="Opaque",
                               data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})  # fmt: skip
        try:
            self.core.replace_namespaced_secret(name, self.namespace, body)
        except ApiException as exc:
            raise TargetUnavailable(f"cannot replace Secret {name}: {exc.status} {exc.reason}",
                                    fix="check RBAC: the runbook needs update on secrets") from exc  # fmt: skip

    def apply_config_map(self, name: str, data: dict[str, str]) -> None:
        """``kubectl apply`` of a ConfigMap (create, else patch); the kubelet syncs mounted copies."""
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, namespace=self.namespace), data=data
        )
        try:
            self.core.create_namespaced_config_map(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise TargetUnavailable(f"cannot create ConfigMap {name}: {exc.status} {exc.reason}",
                                        fix="check RBAC: the runbook needs create/patch on configmaps") from exc  # fmt: skip
            self.core.patch_namespaced_config_map(name, self.namespace, {"data": data})

    @property
    def config_sync_s(self) -> float:
        """A kubelet syncs a mounted ConfigMap within its sync period (``--sync-frequency``, 1 min)
        plus its ConfigMap cache's TTL: up to about two minutes with the defaults."""
        return KUBELET_CONFIG_SYNC_S

    def wait_config_synced(self, name: str | None = None) -> float:
        """A pod's mount cannot be read from here: returns at once (the runtime's poll and the
        wake hint's retries, bounded by ``config_sync_s``, cover the kubelet's delay)."""
        return 0.0

    def install(
        self, values: dict[str, Any], release: str = "helm-ai-kernel", *, dry_run: str | None = None
    ) -> RenderedRelease:
        """``helm upgrade --install`` with Helm's Go SDK against this context."""
        self.release = release
        self._forwards.clear()
        rendered = install_release(CHART_DIR, release, values, namespace=self.namespace, kube_context=self.context,
                                   kubeconfig=self.kubeconfig, dry_run=dry_run)  # fmt: skip
        self._deployment_name = str(rendered.get("Deployment")["metadata"]["name"])
        return rendered

    def uninstall(self, release: str = "helm-ai-kernel") -> Uninstalled:
        """``helm uninstall`` through Helm's Go SDK; objects with a ``keep`` policy stay."""
        self._forwards.clear()
        was, _ = uninstall_release(release, namespace=self.namespace, kube_context=self.context,
                                   kubeconfig=self.kubeconfig)  # fmt: skip
        self._deployment_name = ""
        names = [
            (f"{obj['kind']}/{obj['metadata']['name']}", kept_on_uninstall(obj))
            for _, obj in was.objects
        ]
        return Uninstalled(values=was.values, deleted=[n for n, keep in names if not keep],
                           kept=[n for n, keep in names if keep])  # fmt: skip

    def upgrade(
        self, values: dict[str, Any], release: str = "helm-ai-kernel", *, timeout: float = 300.0
    ) -> RenderedRelease:
        """``helm upgrade --wait``: Helm's storage records the revision ``failed`` on a timeout;
        the rollout's failure is restated as ``kubectl rollout status`` would show it."""
        self.release = release
        self._forwards.clear()
        try:
            rendered = upgrade_release(CHART_DIR, release, values, namespace=self.namespace, timeout_s=max(1, int(timeout)),
                                       kube_context=self.context, kubeconfig=self.kubeconfig)  # fmt: skip
        except RenderError as exc:
            raise StepFailed("rollout.ready", expected=f"the upgraded Deployment ready within {timeout:g}s",
                             seen=exc.helm_message or str(exc), fix=exc.fix) from exc  # fmt: skip
        self._deployment_name = str(rendered.get("Deployment")["metadata"]["name"])
        return rendered

    def history(self, release: str = "helm-ai-kernel") -> list[Revision]:
        """``helm history`` from Helm's own release storage (Secrets in the namespace)."""
        return [Revision(int(e["revision"]), str(e.get("status", "")), str(e.get("description", "")),
                         str(e.get("deployed_at") or e.get("updated") or ""), dict(e.get("config") or {}),
                         [obj for _, obj in manifest_objects(release, e.get("manifest"))])
                for e in release_history(release, namespace=self.namespace, kube_context=self.context,
                                         kubeconfig=self.kubeconfig)]  # fmt: skip

    def rollback(
        self,
        release: str = "helm-ai-kernel",
        revision: int | None = None,
        *,
        timeout: float = 300.0,
    ) -> Revision:
        """``helm rollback --wait``; returns the revision it created (the newest in the history)."""
        self._forwards.clear()
        rollback_release(release, revision, namespace=self.namespace, timeout_s=max(1, int(timeout)),
                         kube_context=self.context, kubeconfig=self.kubeconfig)  # fmt: skip
        return self.history(release)[-1]

    @property
    def deployment_name(self) -> str:
        """The release's Deployment (the chart's fullname), found by its instance label."""
        if not self._deployment_name:
            listed = self.apps.list_namespaced_deployment(
                self.namespace, label_selector=f"{INSTANCE_LABEL}={self.release}"
            ).items
            # checked here too: a server (or proxy) that drops the selector must not hand back
            # another release's Deployment
            found = [
                d for d in listed if (_meta(d).labels or {}).get(INSTANCE_LABEL) == self.release
            ]
            if not found:
                raise TargetUnavailable(f"no Deployment of release {self.release} in namespace {self.namespace}",
                                        fix=f"install it with runbook 03-production-install (helm -n {self.namespace} list shows releases)")  # fmt: skip
            self._deployment_name = str(_meta(found[0]).name)
        return self._deployment_name

    @property
    def deployment(self) -> dict[str, Any]:
        obj = self.apps.read_namespaced_deployment(self.deployment_name, self.namespace)
        result: dict[str, Any] = self._client.sanitize_for_serialization(obj)
        return result

    def _rolled_out(self, dep: client.V1Deployment) -> bool:
        """``kubectl rollout status``'s test: the new generation observed, every replica updated and ready."""
        spec: client.V1DeploymentSpec | None = dep.spec
        status: client.V1DeploymentStatus | None = dep.status
        wanted = spec.replicas if spec is not None and spec.replicas is not None else 1
        if status is None:
            return False
        return ((status.observed_generation or 0) >= (_meta(dep).generation or 0)
                and (status.updated_replicas or 0) >= wanted and (status.ready_replicas or 0) >= wanted)  # fmt: skip

    def wait_ready(
        self, timeout: float = 300.0, on_poll: Callable[[int], None] | None = None
    ) -> float:
        """Watch the Deployment until the rollout is complete; returns the seconds waited."""
        start = time.monotonic()
        name = self.deployment_name
        events = 0
        last = "no status yet"
        while (remaining := timeout - (time.monotonic() - start)) > 0:
            stream = watch.Watch()
            try:
                for event in stream.stream(self.apps.list_namespaced_deployment, self.namespace,
                                           field_selector=f"metadata.name={name}",
                                           timeout_seconds=max(1, int(remaining)), _request_timeout=remaining):  # fmt: skip
                    dep = event["object"]
                    if _meta(dep).name != name:
                        continue
                    events += 1
                    if on_poll:
                        on_poll(events)
                    if self._rolled_out(dep):
                        stream.stop()
                        return time.monotonic() - start
                    status = dep.status
                    last = (f"{status.ready_replicas or 0} ready, {status.updated_replicas or 0} updated"
                            if status is not None else "no status yet")  # fmt: skip
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                if isinstance(exc, ApiException) and exc.status not in (None, 410, 504):
                    raise TargetUnavailable(f"cannot watch deploy/{name}: {exc.status} {exc.reason}",
                                            fix="check RBAC: the runbook needs watch on deployments") from exc  # fmt: skip
            finally:
                stream.stop()
        raise StepFailed("rollout.ready", expected=f"deploy/{name} rolled out within {timeout:g}s",
                         seen=f"{last} after {events} updates",
                         fix=f"kubectl -n {self.namespace} describe deploy/{name}; kubectl -n {self.namespace} logs deploy/{name}")  # fmt: skip

    def readiness_failures(self, timeout: float = 300.0) -> list[str]:
        """The running pod's ``Unhealthy`` events of its readiness probe, read until they count
        ``failureThreshold`` (the kubelet's own count); empty once the pod is Ready instead."""
        container = self._containers()[0]
        probe = container.readiness_probe
        threshold = int(probe.failure_threshold or 3) if probe is not None else 3
        deadline = time.monotonic() + timeout
        seen = "no running pod"
        while time.monotonic() < deadline:
            with contextlib.suppress(TargetUnavailable):
                name = self.running_pod()
                pod = self.core.read_namespaced_pod(name, self.namespace)
                conditions = (pod.status.conditions or []) if pod.status is not None else []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    return []
                events = self.core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.name={name},reason=Unhealthy"
                ).items
                failed = [
                    e for e in events if (e.message or "").startswith("Readiness probe failed")
                ]
                if sum(e.count or 1 for e in failed) >= threshold:
                    return [str(e.message) for e in failed]
                seen = f"pod {name} running, {sum(e.count or 1 for e in failed)} readiness failures"
            time.sleep(1)
        raise StepFailed("rollout.probes", expected=f"the pod Ready or {threshold} readiness probe failures within {timeout:g}s",
                         seen=seen, fix=f"kubectl -n {self.namespace} describe pod -l {INSTANCE_LABEL}={self.release}")  # fmt: skip

    def restart_pod(self) -> None:
        """``kubectl rollout restart``: a new pod template generation (the PVC stays)."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        self.apps.patch_namespaced_deployment(self.deployment_name, self.namespace, patch)
        self.restarts += 1
        self._forwards.clear()

    def forwarded_ports(self) -> dict[str, int]:
        return {name: self._forward(name) for name in self._port_names()}

    def url(self, port_name: str = "http") -> str:
        """``kubectl port-forward``: a 127.0.0.1 URL for a named port of the release's pod."""
        return f"http://127.0.0.1:{self._forward(port_name)}"

    def _containers(self) -> list[client.V1Container]:
        dep = self.apps.read_namespaced_deployment(self.deployment_name, self.namespace)
        template: client.V1PodTemplateSpec = dep.spec.template
        containers: list[client.V1Container] = template.spec.containers  # type: ignore[union-attr]
        return containers

    def _port_names(self) -> list[str]:
        return [p.name for c in self._containers() for p in c.ports or [] if p.name]

    def running_pod(self) -> str:
        """The name of a Running pod of the release (``kubectl get pods -l ...``)."""
        dep = self.apps.read_namespaced_deployment(self.deployment_name, self.namespace)
        labels: dict[str, str] = dep.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = [
            p
            for p in self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
            if all((_meta(p).labels or {}).get(k) == v for k, v in labels.items())
        ]  # the selector re-checked, as for the Deployment
        running = [p for p in pods if p.status is not None and p.status.phase == "Running"]
        if not running:
            raise TargetUnavailable(f"no pod is running for deploy/{self.deployment_name}",
                                    fix=f"wait for the rollout first; kubectl -n {self.namespace} get pods -l {selector}")  # fmt: skip
        return str(_meta(running[0]).name)

    def _forward(self, port_name: str) -> int:
        if port_name in self._forwards:
            return self._forwards[port_name]
        ports = {
            str(p.name): int(p.container_port)
            for c in self._containers()
            for p in c.ports or []
            if p.name
        }
        if port_name not in ports:
            raise TargetUnavailable(f"deploy/{self.deployment_name} has no port named {port_name}",
                                    fix=f"named ports are {sorted(ports)}")  # fmt: skip
        pod, remote = self.running_pod(), ports[port_name]
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        local = int(listener.getsockname()[1])

        def serve() -> None:
            while True:
                conn, _ = listener.accept()
                forward = portforward(self.core.connect_get_namespaced_pod_portforward, pod,
                                      self.namespace, ports=str(remote))  # fmt: skip
                threading.Thread(
                    target=_pipe, args=(conn, forward.socket(remote)), daemon=True
                ).start()

        threading.Thread(target=serve, daemon=True, name=f"port-forward-{port_name}").start()
        self._forwards[port_name] = local
        return local

    def logs(self) -> str:
        """``kubectl logs``: the runtime container of a running pod of the release."""
        container = self._containers()[0].name
        text: str = self.core.read_namespaced_pod_log(
            self.running_pod(), self.namespace, container=container
        )
        return text

    def claim_phase(self, claim: str) -> str | None:
        try:
            pvc = self.core.read_namespaced_persistent_volume_claim(claim, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(pvc.status.phase) if pvc.status is not None else "Pending"

    def close(self) -> None:
        """Nothing runs locally but the port-forward threads (daemons); cluster objects stay."""
        self._forwards.clear()


def _context_names(kubeconfig: str | None) -> list[str]:
    with contextlib.suppress(config.ConfigException, OSError, TypeError, ValueError, KeyError):
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
        return sorted(str(c.get("name")) for c in contexts or [])[:20]
    return []


def _context_namespace(kubeconfig: str | None, context: str) -> str:
    """The namespace a context names (what ``kubectl --context`` uses), else ``default``."""
    with contextlib.suppress(config.ConfigException, FileNotFoundError, TypeError):
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
        for entry in contexts:
            if entry.get("name") == context:
                return str(entry.get("context", {}).get("namespace") or "default")
    return "default"


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    threading.Thread(target=copy, args=(b, a), daemon=True).start()
    copy(a, b)
