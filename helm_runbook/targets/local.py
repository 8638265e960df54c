"""The ``local`` target: runs a rendered release on this machine exactly as its objects say.

The Deployment's pod is assembled from the rendered objects: Secret and ConfigMap volumes become
directories with their files and modes (``items``, ``defaultMode``), the PVC is a directory that
outlives pod restarts, emptyDirs are fresh per pod, env comes from ``value``/``secretKeyRef``/
``configMapKeyRef``. Each container runs in a bubblewrap sandbox as the pod's uid/gid with its
volumes at their mount paths (``/data``, ``/etc/helm-ai-kernel/policy``, ...): first the init
container's shell script, then the runtime (the image's entrypoint ``helm-ai-kernel`` is this
package's runtime) with the rendered args.

Contained as a kubelet would contain it: names, keys, item paths, mount paths, modes and ids are
checked by the API server's rules (``targets/validation.py``) and every host path is resolved
inside the workdir; Secret and ConfigMap volumes are read-only, the root is read-only when
``readOnlyRootFilesystem`` says so, and the container runs as its ``runAsUser``/``runAsGroup``.
The pod's environment (keys included) is bwrap's process environment, never its arguments.
Everything on the host is owner-only: the workdir and its directories 0700, files 0600 (the pod
runs with umask 077), Secret/ConfigMap items with their kubelet modes behind those directories.

The pod has its own network namespace; ``targets/netrelay.py`` carries its declared ports out
and, in, the host loopback ports its env's URLs name (the upstream, ``DATABASE_URL``).
This module assembles the pod from the objects; the sandbox, the relay and the process
bookkeeping are ``targets/pod.py``, owner-only host files ``targets/hostfiles.py``.

One deliberate difference, the one ``kubectl port-forward`` makes: each container port is served
on a free 127.0.0.1 port, so ``--addr`` becomes 127.0.0.1 and ``--port``/``HELM_HEALTH_PORT``/
``HELM_METRICS_PORT`` become the forwarded ports (the same numbers inside the pod).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.sdk import render
from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.standins.ingress import LocalIngress
from helm_runbook.standins.observability import LocalPrometheus, ScrapeJob, scrape_job
from helm_runbook.standins.process import free_port
from helm_runbook.targets.base import Revision, Uninstalled, kept_on_uninstall
from helm_runbook.targets.hostfiles import private_dir, private_file, write_file
from helm_runbook.targets.pod import (
    NETRELAY,
    POD_BASE_ENV,
    POD_NET_DIR,
    POD_UMASK,
    Pod,
    Sandboxed,
    alive,
    bubblewrap,
    descendants,
    egress_ports,
    launch_detached,
    owner_only_mount_point,
    pick_ports,
    pod_fs_group,
    pod_identity,
    start_host_relay,
    stop_relay,
    terminate_tree,
    wait_exit,
)
from helm_runbook.targets.started import remember
from helm_runbook.targets.validation import (
    check_config_key,
    check_item_path,
    check_pod_spec,
    check_probe_path,
    check_subdomain,
    inside,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
HISTORY_MAX = 10  # helm upgrade's default --history-max: older revisions are pruned
PORT_ENV = {"health": "HELM_HEALTH_PORT", "metrics": "HELM_METRICS_PORT"}
#: The local kubelet's ConfigMap volume sync: a changed ConfigMap reaches a running pod's mounted
#: files this long after ``kubectl apply`` (a cluster's kubelet takes up to its sync period plus
#: its cache TTL, about a minute by default). Short, so runbooks stay fast; never zero, so a
#: step that reads the mount right after applying is caught here as it would be on a cluster.
CONFIG_SYNC_DELAY_S = 0.05
PROBE_PERIOD_S = 0.02  # the local kubelet's probe period: a refused probe costs about a millisecond
# Probes here are plain http (and the kubelet never verifies an HTTPS probe's certificate):
# no CA bundle to load, which an httpx client otherwise does for each wait (~20 ms a rollout).
KUBELET_TLS = False


@dataclass
class LocalTarget:
    """A namespace on this machine: Secrets, ConfigMaps, PVC directories and one Deployment's pod."""

    workdir: Path
    namespace: str = "default"
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    release: RenderedRelease | None = None
    pod: Pod | None = None
    restarts: int = 0
    name: str = "local"
    # helm history of the installed release: number, status, description, updated, values, objects
    revisions: list[dict[str, Any]] = field(default_factory=list)
    # the kubelet's pending ConfigMap volume syncs (name → timer) and the lock they write under
    _syncs: dict[str, threading.Timer] = field(default_factory=dict, repr=False)
    _sync_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- state on disk (the "cluster" outlives a notebook kernel) ----------------------------

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def save(self) -> None:
        """Persist objects and the running pod (0600: Secrets live here, as in etcd)."""
        private_dir(self.workdir)
        state = {
            "namespace": self.namespace,
            "secrets": {n: {k: base64.b64encode(v).decode() for k, v in d.items()} for n, d in self.secrets.items()},
            "config_maps": self.config_maps,
            "release": None if self.release is None else {
                "release": self.release.release, "namespace": self.release.namespace,
                "objects": self.release.objects, "notes": self.release.notes, "values": self.release.values,
            },
            "restarts": self.restarts,
            "revisions": self.revisions,
            "pod": None if self.pod is None else {
                "number": self.pod.number, "pid": self.pod.process_pid, "ports": self.pod.ports,
                "log_path": str(self.pod.log_path), "relay_pid": self.pod.relay_pid,
            },
        }  # fmt: skip
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)

    @classmethod
    def open(cls, workdir: Path) -> LocalTarget:
        """Attach to a local target created earlier (by another notebook), or start an empty one."""
        target = cls(workdir)
        if not target.state_file.exists():
            return target
        state = json.loads(target.state_file.read_text())
        target.namespace = state["namespace"]
        target.secrets = {
            n: {k: base64.b64decode(v) for k, v in d.items()} for n, d in state["secrets"].items()
        }
        target.config_maps = state["config_maps"]
        if state["release"]:
            r = state["release"]
            objects = [(source, obj) for source, obj in r["objects"]]
            target.release = RenderedRelease(
                r["release"], r["namespace"], objects, r["notes"], r.get("values", {})
            )
        target.restarts = state["restarts"]
        target.revisions = state.get("revisions", [])
        pod = state["pod"]
        if pod and alive(pod["pid"]):
            target.pod = Pod(pod["number"], None, pod["ports"], Path(pod["log_path"]), pod["pid"],
                             pod.get("relay_pid", 0))  # fmt: skip
            target._sync_config_volumes(None, pod["number"])  # a sync whose process has ended
        elif pod:
            stop_relay(pod.get("relay_pid", 0))  # the pod died with nobody watching
        return target

    # -- objects ------------------------------------------------------------------------

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl create secret generic NAME --from-literal=...`` (values never logged)."""
        _check_object("Secret", name, data)
        if name in self.secrets:
            raise StepFailed(f"secrets.{name}", expected=f"no Secret {name} yet", seen="it already exists",
                             fix=f"kubectl delete secret {name}, or reuse it")  # fmt: skip
        self.secrets[name] = {k: v.encode() for k, v in data.items()}

    def replace_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl replace`` of an existing Secret (values never logged); the next pod reads it."""
        _check_object("Secret", name, data)
        if name not in self.secrets:
            raise StepFailed(f"secrets.{name}", expected=f"a Secret {name} to replace", seen="it does not exist",
                             fix="create it first (runbook 02-secret-setup)")  # fmt: skip
        self.secrets[name] = {k: v.encode() for k, v in data.items()}
        self.save()

    def apply_config_map(self, name: str, data: dict[str, str]) -> None:
        """``kubectl apply`` of a ConfigMap: stored at once; a running pod's mounted files follow
        ``CONFIG_SYNC_DELAY_S`` later, without a restart (the kubelet's sync); nothing else
        happens until the runtime reconciles them."""
        _check_object("ConfigMap", name, data)
        self.config_maps[name] = dict(data)
        self.save()
        self._schedule_config_sync(name)

    # -- the kubelet's ConfigMap volume sync ------------------------------------------------

    def _schedule_config_sync(self, name: str) -> None:
        """Sync the running pod's volumes of ConfigMap ``name`` after the kubelet's delay."""
        if self.pod is None or self.release is None:
            return  # the next pod mounts the stored data
        with self._sync_lock:
            if (pending := self._syncs.pop(name, None)) is not None:
                pending.cancel()  # the later sync writes the latest data
            timer = threading.Timer(
                CONFIG_SYNC_DELAY_S, self._sync_config_volumes, (name, self.pod.number)
            )
            timer.daemon = True
            self._syncs[name] = timer
            timer.start()

    def _sync_config_volumes(self, name: str | None, pod_number: int) -> None:
        """Bring pod ``pod_number``'s volumes of ConfigMap ``name`` (every ConfigMap when None) to
        its current data, as the kubelet's atomic writer does: only when the data changed (an
        unchanged file keeps its mtime, which a mounted-file source reads as the epoch), each
        file replaced atomically, keys the ConfigMap no longer has removed."""
        with self._sync_lock:
            if name is not None:
                if self._syncs.get(name) is not threading.current_thread():
                    return  # cancelled (the pod is being deleted) or superseded by a later apply
                del self._syncs[name]
            if self.pod is None or self.pod.number != pod_number or self.release is None:
                return  # the pod was deleted meanwhile: its successor mounts the stored data
            spec = self.deployment["spec"]["template"]["spec"]
            group_read = 0o440 if pod_fs_group(spec) is not None else 0
            root = self.workdir / "pods" / str(pod_number) / "volumes"
            for volume in spec.get("volumes", []):
                source = volume.get("configMap", {})
                data = self.config_maps.get(source.get("name", ""))
                if data is None or (name is not None and source["name"] != name):
                    continue
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                if any(item["key"] not in data for item in items):
                    continue  # a key the volume names is gone: the kubelet keeps the old files
                target = private_dir(inside(root, volume["name"]))
                wanted = {}
                for item in items:
                    path = inside(
                        target, check_item_path(f"volume {volume['name']} item path", item["path"])
                    )
                    wanted[path] = (
                        data[item["key"]].encode(),
                        int(item.get("mode", source.get("defaultMode", 0o644))) | group_read,
                    )
                if all(
                    p.is_file() and p.read_bytes() == d and p.stat().st_mode & 0o7777 == m
                    for p, (d, m) in wanted.items()
                ):
                    continue
                for path, (content, mode) in wanted.items():
                    private_dir(path.parent)
                    write_file(path, content, mode)
                for path in target.rglob("*"):
                    if path.is_file() and path.resolve() not in wanted:
                        path.unlink()

    def wait_config_synced(self, name: str | None = None) -> float:
        """Wait until the running pod mounts ConfigMap ``name``'s current data (every pending
        ConfigMap when None): the seconds waited, at most ``CONFIG_SYNC_DELAY_S``."""
        start = time.perf_counter()
        with self._sync_lock:
            pending = [t for n, t in self._syncs.items() if name is None or n == name]
        for timer in pending:
            timer.join(CONFIG_SYNC_DELAY_S + 5)
        return time.perf_counter() - start

    @property
    def config_sync_s(self) -> float:
        """How long a ConfigMap change may take to reach a running pod's mounted files."""
        return CONFIG_SYNC_DELAY_S

    def _cancel_config_syncs(self) -> None:
        with self._sync_lock:
            for timer in self._syncs.values():
                timer.cancel()
            self._syncs.clear()

    def apply(self, release: RenderedRelease) -> None:
        """``helm install``: store the release's Secrets and ConfigMaps, keep the Deployment.

        Refused as a whole, before anything is stored, when an object breaks the API server's
        rules for names, keys, paths, modes or ids (the local target turns them into host paths).
        """
        for obj in release.of_kind("Secret"):
            data = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
            _check_object("Secret", obj["metadata"].get("name"), data)
        for obj in release.of_kind("ConfigMap"):
            _check_object("ConfigMap", obj["metadata"].get("name"), obj.get("data") or {})
        for obj in release.of_kind("PersistentVolumeClaim"):
            check_subdomain("PersistentVolumeClaim metadata.name", obj["metadata"].get("name"))
        for obj in release.of_kind("Deployment"):
            check_pod_spec(obj["spec"]["template"]["spec"])
        for obj in release.of_kind("Secret"):
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data |= {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
            self.secrets[obj["metadata"]["name"]] = data
        changed = []
        for obj in release.of_kind("ConfigMap"):
            name, data = obj["metadata"]["name"], dict(obj.get("data") or {})
            if self.config_maps.get(name) != data:
                changed.append(name)
            self.config_maps[name] = data
        self.release = release
        for name in changed:  # a pod that keeps running (its template unchanged) follows them
            self._schedule_config_sync(name)

    def install(self, values: dict[str, Any], release: str = "helm-ai-kernel") -> RenderedRelease:
        """``helm upgrade --install``: render with Helm's SDK (guards included), replace the pod;
        a new revision, ``deployed`` at once (no ``--wait``)."""
        rendered = self._replace(
            render(CHART_DIR, values, release=release, namespace=self.namespace)
        )
        self._settle(self._new_revision(rendered, "pending-upgrade"), "deployed")
        return rendered

    def upgrade(
        self, values: dict[str, Any], release: str = "helm-ai-kernel", *, timeout: float = 60.0
    ) -> RenderedRelease:
        """``helm upgrade --wait --timeout``: ``deployed`` once ready; ``failed`` otherwise, the
        revision before staying ``deployed`` (as Helm leaves it) until a rollback supersedes it."""
        if self.release is None or self.release.release != release:
            raise TargetUnavailable(f"release {release} is not installed on the local target",
                                    fix="run runbook 03-production-install first (helm upgrade --install)")  # fmt: skip
        rendered = render(CHART_DIR, values, release=release, namespace=self.namespace)
        self._rollout(rendered, "Upgrade complete", timeout)
        return rendered

    def rollback(
        self, release: str = "helm-ai-kernel", revision: int | None = None, *, timeout: float = 60.0
    ) -> Revision:
        """``helm rollback RELEASE [REVISION] --wait``: the stored manifest of ``revision`` (the
        one before the latest when None) applied as a new revision; failed ones stay ``failed``."""
        if self.release is None or self.release.release != release or not self.revisions:
            raise TargetUnavailable(f"release {release} has no history on the local target",
                                    fix="run runbook 03-production-install first")  # fmt: skip
        wanted = self.revisions[-1]["number"] - 1 if revision is None else revision
        source = next((r for r in self.revisions if r["number"] == wanted), None)
        if source is None:
            raise StepFailed("rollback", expected=f"revision {wanted} in the history of {release}",
                             seen=f"revisions {[r['number'] for r in self.revisions]}",
                             fix="pick a revision that helm history lists")  # fmt: skip
        stored = RenderedRelease(release, self.namespace, [(s, o) for s, o in source["objects"]],
                                 source.get("notes", ""), source["values"])  # fmt: skip
        return self._rollout(stored, f"Rollback to {wanted}", timeout)

    def history(self, release: str = "helm-ai-kernel") -> list[Revision]:
        """``helm history``: the kept revisions, oldest first (none once uninstalled)."""
        if self.release is None or self.release.release != release:
            return []
        return [_revision(r) for r in self.revisions]

    def _rollout(self, rendered: RenderedRelease, description: str, timeout: float) -> Revision:
        """Apply ``rendered`` as a new revision and wait for readiness; settle its status."""
        self._replace(rendered)
        entry = self._new_revision(rendered, "pending-upgrade")
        try:
            self.wait_ready(timeout)
        except StepFailed as exc:
            entry["description"] = f"{description.split(' ')[0]} failed: {exc.seen}"
            self._settle(entry, "failed")
            raise
        entry["description"] = description
        return self._settle(entry, "deployed")

    def _replace(self, rendered: RenderedRelease) -> RenderedRelease:
        """The release's objects replaced and its pod started again from them, unless the pod
        template is unchanged: a Deployment rolls out a new pod only when its template changes
        (the chart's checksum annotations change it with every Secret or ConfigMap it renders)."""
        if self.release is not None and self.release.release != rendered.release:
            self.revisions = []  # one release per local namespace: another name starts over
        elif self.pod is not None and self._pod_template(self.release) == self._pod_template(
            rendered
        ):
            self.apply(rendered)
            self._follow_pod(self.pod.ports)  # the Ingress or ServiceMonitor may have changed
            return rendered
        if self.pod is not None:
            self.stop_pod()
        self.apply(rendered)
        self.start_pod()
        return rendered

    @staticmethod
    def _pod_template(release: RenderedRelease | None) -> dict[str, Any] | None:
        """The Deployment's pod template (None without a release or a Deployment)."""
        if release is None or not release.has("Deployment"):
            return None
        template: dict[str, Any] = release.get("Deployment")["spec"]["template"]
        return template

    def _new_revision(self, rendered: RenderedRelease, status: str) -> dict[str, Any]:
        entry = {
            "number": self.revisions[-1]["number"] + 1 if self.revisions else 1,
            "status": status,
            "description": "Upgrade complete" if self.revisions else "Install complete",
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "values": rendered.values,
            "objects": rendered.objects,
            "notes": rendered.notes,
        }
        self.revisions = [*self.revisions, entry][-HISTORY_MAX:]
        self.save()
        return entry

    def _settle(self, entry: dict[str, Any], status: str) -> Revision:
        """``deployed`` supersedes every other deployed revision; ``failed`` leaves them."""
        if status == "deployed":
            for other in self.revisions:
                if other is not entry and other["status"] == "deployed":
                    other["status"] = "superseded"
        entry["status"] = status
        self.save()
        return _revision(entry)

    def uninstall(self, release: str = "helm-ai-kernel") -> Uninstalled:
        """``helm uninstall``: stop the pod, delete the release's Secrets, ConfigMaps and claim
        directories, except objects annotated ``helm.sh/resource-policy: keep``."""
        if self.release is None or self.release.release != release:
            raise TargetUnavailable(f"release {release} is not installed on the local target",
                                    fix="install it with runbook 03-production-install first")  # fmt: skip
        if self.pod is not None:
            self.stop_pod()
        stores: dict[str, dict[str, Any]] = {"Secret": self.secrets, "ConfigMap": self.config_maps}
        deleted, kept = [], []
        for _, obj in self.release.objects:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["kind"] == "Pod":  # a helm test hook: never created by install
                continue
            if kept_on_uninstall(obj):
                kept.append(name)
                continue
            if obj["kind"] in stores:
                stores[obj["kind"]].pop(obj["metadata"]["name"], None)
            elif obj["kind"] == "PersistentVolumeClaim":
                shutil.rmtree(self.workdir / "pvc" / obj["metadata"]["name"], ignore_errors=True)
            deleted.append(name)
        values = self.release.values
        self.release = None
        self.revisions = []  # helm uninstall deletes the release's history (no --keep-history)
        self.save()
        return Uninstalled(values=values, deleted=deleted, kept=kept)

    @property
    def deployment(self) -> dict[str, Any]:
        if self.release is None:
            raise TargetUnavailable(
                "nothing installed on the local target",
                fix="install it with runbook 03-production-install first",
            )
        return self.release.get("Deployment")

    def claim_phase(self, claim: str) -> str | None:
        """A claim the release rendered is always Bound here (its directory is the volume)."""
        if self.release is None:
            return None
        names = {obj["metadata"]["name"] for obj in self.release.of_kind("PersistentVolumeClaim")}
        return "Bound" if claim in names else None

    def pvc_dir(self, claim: str) -> Path:
        """The claim's volume: an owner-only directory under the workdir, whatever the name says."""
        check_subdomain("persistentVolumeClaim.claimName", claim)
        return private_dir(inside(self.workdir / "pvc", claim))

    # -- pods -----------------------------------------------------------------------------

    def start_pod(self) -> Pod:
        """Materialise volumes, run the init container to completion, then start the runtime."""
        if self.pod is not None:
            raise TargetUnavailable("a pod is already running", fix="stop or restart it")
        spec = self.deployment["spec"]["template"]["spec"]
        check_pod_spec(spec)
        number = self.restarts
        pod_dir = self.workdir / "pods" / str(number)
        shutil.rmtree(pod_dir, ignore_errors=True)
        private_dir(pod_dir / "volumes")
        volumes = {
            v["name"]: self._volume(v, pod_dir / "volumes", pod_fs_group(spec))
            for v in spec.get("volumes", [])
        }
        for init in spec.get("initContainers", []):
            self._run_init(init, spec, volumes, pod_dir)
        container = spec["containers"][0]
        env = self._env(container)
        egress = egress_ports(env)
        ports = pick_ports([p["name"] for p in container.get("ports", [])], avoid=set(egress))
        for name, variable in PORT_ENV.items():
            if name in ports:
                env[variable] = str(ports[name])
        args = list(container.get("args", []))
        for flag, value in (
            ("--addr", "127.0.0.1"),
            ("--port", str(ports.get("http", free_port()))),
        ):
            if flag in args:
                args[args.index(flag) + 1] = value
        # The image's entrypoint is this package's runtime; a declared command replaces it.
        entrypoint = container.get("command") or [sys.executable, "-m", "helm_runbook.runtime"]
        inbound = ",".join(str(p) for p in sorted(ports.values()))
        outbound = ",".join(str(p) for p in egress)
        net_dir = private_dir(pod_dir / "net")
        relay_pid = start_host_relay(net_dir, inbound, outbound, pod_dir)
        in_pod = [sys.executable, "-I", str(NETRELAY), "pod", POD_NET_DIR, "--in", inbound, "--out", outbound,
                  "--", *entrypoint, *args]  # fmt: skip
        log_path = private_file(pod_dir / f"{container['name']}.log")
        try:
            pid = launch_detached(
                self._sandbox(in_pod, spec, container, volumes, env, net_dir), log_path,
                private_file(pod_dir / "pod.pid"),
            )  # fmt: skip
        except BaseException:
            stop_relay(relay_pid)
            raise
        self.pod = Pod(number, None, ports, log_path, pid, relay_pid)
        remember(relay_pid, "network relay", self.workdir)  # found by `helm-runbook stop` even
        remember(pid, "pod", self.workdir)  # after the workdir is deleted (targets/started.py)
        self.save()
        self._follow_pod(ports)
        return self.pod

    def _follow_pod(self, ports: dict[str, int]) -> None:
        """What watches Services follows the new pod: nginx serves the release's Ingress (a
        missing TLS Secret fails the install with its name) and a running local Prometheus
        scrapes the new pod's metrics port."""
        if self.release is None:
            return
        if LocalIngress(self.workdir).start(self.release, self.secrets, ports):
            self._remember_nginx()
        prometheus = LocalPrometheus(self.workdir)
        if prometheus.url and (scrape := self._scrape(ports)) is not None:
            prometheus.start(*scrape, self.pod_name)

    def _scrape(self, ports: dict[str, int]) -> tuple[ScrapeJob, str] | None:
        """The release's ServiceMonitor job and the address it scrapes; None without a
        ServiceMonitor or while the pod serves no metrics port."""
        if self.release is None or not self.release.of_kind("ServiceMonitor"):
            return None
        job = scrape_job(self.release)
        port = ports.get(job.container_port)
        return (job, f"127.0.0.1:{port}") if port is not None else None

    def _remember_nginx(self) -> None:
        """Record nginx's master (it writes its pid file a moment after the start returns)."""
        deadline = time.monotonic() + 2
        while not (pid := int(LocalIngress(self.workdir).state().get("pid", 0))):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        remember(pid, "nginx", self.workdir)

    def start_monitoring(self) -> ScrapeJob | None:
        """The local monitoring stack: Prometheus started, or reconfigured if its job changed,
        scraping the release's ServiceMonitor job, or no job yet (an upgrade that renders the
        ServiceMonitor adds it, as prometheus-operator would). Returns the job scraped."""
        scrape = self._scrape(self.forwarded_ports())
        job, address = scrape if scrape is not None else (None, "")
        self.prometheus().start(job, address, self.pod_name)
        remember(self.prometheus().pid, "prometheus", self.workdir)
        return job

    def running_pod(self) -> str:
        """The running pod as ``kubectl get pods`` tells it apart: its name and, since a local pod
        name repeats across template changes, its process id."""
        pod = self._running()
        return f"{self.pod_name} (pid {pod.process_pid})"

    @property
    def pod_name(self) -> str:
        """The pod's name as a ReplicaSet would give it: the Deployment's name and the restart."""
        return f"{self.deployment['metadata']['name']}-{self.restarts}"

    def ingress(self) -> dict[str, Any]:
        """The local ingress controller's ports and hosts (empty without an Ingress)."""
        return LocalIngress(self.workdir).state()

    def prometheus(self) -> LocalPrometheus:
        """The local monitoring stack's Prometheus (``start_monitoring`` starts it)."""
        return LocalPrometheus(self.workdir)

    def _volume(self, volume: dict[str, Any], root: Path, fs_group: int | None) -> Path:
        """The volume's host directory; Secret and ConfigMap files get their final mode at creation
        (``mode``/``defaultMode``, plus the group-read bits the kubelet adds for an ``fsGroup``)."""
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            return self.pvc_dir(volume["persistentVolumeClaim"]["claimName"])
        target = private_dir(inside(root, name))
        if "emptyDir" in volume:
            return target
        if "secret" in volume:
            source = volume["secret"]
            data = self.secrets.get(source["secretName"])
            kind, ref = "Secret", source["secretName"]
            mode = int(source.get("defaultMode", 0o644))
        elif "configMap" in volume:
            source = volume["configMap"]
            raw = self.config_maps.get(source["name"])
            data = None if raw is None else {k: v.encode() for k, v in raw.items()}
            kind, ref = "ConfigMap", source["name"]
            mode = int(source.get("defaultMode", 0o644))
        else:
            raise TargetUnavailable(
                f"volume {name}: unsupported source {sorted(volume)}",
                fix="use a PVC, emptyDir, Secret or ConfigMap",
            )
        if data is None:
            raise StepFailed("install.volumes", expected=f"{kind} {ref} for volume {name}",
                             seen=f"no {kind} {ref}: the pod would stay in ContainerCreating",
                             fix=_create_fix(kind, ref, "<key>") + ", or fix its name in values")  # fmt: skip
        items = source.get("items") or [
            {"key": check_config_key(f"{kind} {ref} key", k), "path": k} for k in data
        ]
        group_read = 0o440 if fs_group is not None else 0  # kubelet: read-only volume + fsGroup
        for item in items:
            if item["key"] not in data:
                raise StepFailed("install.volumes", expected=f"key {item['key']} in {kind} {ref}",
                                 seen=f"keys {sorted(data)}", fix=f"add {item['key']} to {kind} {ref}")  # fmt: skip
            path = inside(target, check_item_path(f"volume {name} item path", item["path"]))
            private_dir(path.parent)
            write_file(path, data[item["key"]], int(item.get("mode", mode)) | group_read)
        return target

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in container.get("env", []):
            name = entry["name"]
            if "value" in entry:
                env[name] = str(entry["value"])
                continue
            source = entry.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = self.secrets.get(ref["name"], {}).get(ref["key"])
                kind = "Secret"
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                raw = self.config_maps.get(ref["name"], {}).get(ref["key"])
                value = None if raw is None else raw.encode()
                kind = "ConfigMap"
            else:
                continue
            if value is None:
                if ref.get("optional"):
                    continue
                raise StepFailed(
                    "install.env", expected=f"{kind} {ref['name']} with key {ref['key']} for {name}",
                    seen="missing: the container would fail with CreateContainerConfigError",
                    fix=_create_fix(kind, ref["name"], ref["key"]),
                )  # fmt: skip
            env[name] = value.decode()
        return env

    def _sandbox(self, command: list[str], spec: dict[str, Any], container: dict[str, Any], volumes: dict[str, Path],
                 env: dict[str, str], net_dir: Path | None = None) -> Sandboxed:  # fmt: skip
        """The bwrap command for one container: its identity, mounts and root as the spec grants,
        and its own network namespace (only a loopback; ``net_dir`` joins it to the relays)."""
        uid, gid = pod_identity(spec, container)
        args = [bubblewrap(), "--unshare-user", "--uid", str(uid), "--gid", str(gid),
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                "--proc", "/proc", "--dev", "/dev", "--ro-bind", "/usr", "/usr"]  # fmt: skip
        for top in ("bin", "lib", "lib64", "sbin"):
            path = Path("/") / top
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.exists():
                args += ["--ro-bind", str(path), str(path)]
        args += ["--dir", "/etc"]
        for name in (
            "passwd",
            "group",
            "hosts",
            "nsswitch.conf",
            "resolv.conf",
            "ssl",
            "ld.so.cache",
            "localtime",
        ):
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        # The kubelet mounts Secret and ConfigMap volumes read-only whatever the mount says.
        always_ro = {
            v["name"] for v in spec.get("volumes", []) if "secret" in v or "configMap" in v
        }
        mounted = set()
        for mount in container.get("volumeMounts", []):
            read_only = mount.get("readOnly") or mount["name"] in always_ro
            args += [
                "--ro-bind" if read_only else "--bind",
                str(volumes[mount["name"]]),
                mount["mountPath"],
            ]
            mounted.add(mount["mountPath"])
        if "/tmp" not in mounted:
            args += ["--tmpfs", "/tmp"]
        if net_dir is not None:
            args += ["--bind", str(net_dir), POD_NET_DIR]
        # The interpreter and this package last: a volume at /tmp (the chart's emptyDir) must not
        # hide a checkout or venv that lives under /tmp. Only the package directory of the
        # checkout, so the pod never sees a workdir kept in it (state.json holds every Secret).
        bound = sorted({sys.base_prefix, sys.prefix, str(PACKAGE_DIR)})
        for prefix in bound:
            owner_only_mount_point(prefix, container, volumes)
            args += ["--ro-bind", prefix, prefix]
        workdir = self.workdir.resolve()
        if any(workdir == Path(p) or Path(p) in workdir.parents for p in bound):
            args += ["--tmpfs", str(workdir)]
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            args += ["--remount-ro", "/"]  # not recursive: writable volumes stay writable
        args += ["--chdir", "/"]  # bwrap also sets PWD to it (replacing the launcher shell's)
        # The pod's environment reaches it as a container runtime gives it: bwrap hands its own
        # environment to the child, which only this user can read (/proc/PID/environ is 0400);
        # never as --setenv arguments, which every local user sees in ps.
        return Sandboxed([*args, *command], {**POD_BASE_ENV, **env})

    def _run_init(
        self, init: dict[str, Any], spec: dict[str, Any], volumes: dict[str, Path], pod_dir: Path
    ) -> None:
        command = [*init.get("command", []), *init.get("args", [])]
        sandboxed = self._sandbox(command, spec, init, volumes, self._env(init))
        proc = subprocess.run(sandboxed.argv, env=sandboxed.env, capture_output=True, timeout=60,
                              umask=POD_UMASK)  # fmt: skip
        write_file(pod_dir / f"{init['name']}.log", proc.stdout + proc.stderr, 0o600)
        if proc.returncode != 0:
            seen = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            fix = ("the data volume holds a root.key from another signing Secret: restore that Secret "
                   "(never rotate silently) or start from an empty PVC"
                   if "refusing silent rotation" in seen else "see the init container's message")  # fmt: skip
            raise StepFailed(f"install.init.{init['name']}", expected="init container exits 0",
                             seen=f"exit {proc.returncode}: {seen} (pod stays in Init:Error)", fix=fix)  # fmt: skip

    def wait_ready(
        self, timeout: float = 30.0, on_poll: Callable[[int], None] | None = None
    ) -> float:
        """Poll the readiness probe until it passes; returns seconds waited (rollout status)."""
        pod = self._running()
        probe = self._probe_spec("readinessProbe")
        start = time.monotonic()
        attempts = 0
        with httpx.Client(timeout=probe.get("timeoutSeconds", 1), verify=KUBELET_TLS) as kubelet:
            while time.monotonic() - start < timeout:
                attempts += 1
                if on_poll:
                    on_poll(attempts)
                self._check_running(pod)
                if self._probe(kubelet, probe, "Readiness") is None:
                    return time.monotonic() - start
                time.sleep(PROBE_PERIOD_S)
        raise StepFailed("rollout.ready", expected=f"readiness probe {self._probe_where(probe)} answers 200 within {timeout:g}s",
                         seen=f"no answer after {attempts} attempts", fix="inspect HELM_HEALTH_PORT and the pod logs")  # fmt: skip

    def readiness_failures(self, timeout: float = 60.0) -> list[str]:
        """What ``kubectl describe pod`` shows of a pod that runs but never becomes Ready: once its
        container serves the liveness probe, the readiness probe's messages for
        ``failureThreshold`` failures in a row; empty when the readiness probe passes instead.

        The kubelet probes every ``periodSeconds``; the local target probes every 20 ms (as its
        ``wait_ready`` does), so the failures come at once instead of after a period each."""
        pod = self._running()
        liveness = self._probe_spec("livenessProbe")
        readiness = self._probe_spec("readinessProbe")
        threshold = int(readiness.get("failureThreshold", 3))
        deadline = time.monotonic() + timeout
        failures: list[str] = []
        live = False
        with httpx.Client(
            timeout=readiness.get("timeoutSeconds", 1), verify=KUBELET_TLS
        ) as kubelet:
            while time.monotonic() < deadline:
                self._check_running(pod)
                if not live:
                    live = self._probe(kubelet, liveness, "Liveness") is None
                else:
                    failure = self._probe(kubelet, readiness, "Readiness")
                    if failure is None:
                        return []
                    failures.append(failure)
                    if len(failures) >= threshold:
                        return failures
                time.sleep(PROBE_PERIOD_S)
        state = "its readiness probe still running" if live else "the liveness probe never answered"
        raise StepFailed("rollout.probes", expected=f"the container serving within {timeout:g}s, then the readiness probe passing or failing {threshold} times",
                         seen=state, fix="read the pod log: the runtime names what it waits for")  # fmt: skip

    def _probe_spec(self, kind: str) -> dict[str, Any]:
        """The runtime container's probe (the chart's ``/health`` on ``health`` when it has none)."""
        container = self.deployment["spec"]["template"]["spec"]["containers"][0]
        probe: dict[str, Any] = dict(container.get(kind) or {})
        probe.setdefault("httpGet", {"path": "/health", "port": "health"})
        return probe

    def _probe_url(self, probe: dict[str, Any]) -> str | None:
        """Where the kubelet sends an httpGet probe; None for a port no container declares.
        Built from parts as the kubelet builds it (scheme, the pod's host and port, then the
        path): nothing in the path can name another host, port or user."""
        get = probe["httpGet"]
        port = self._forwarded(get["port"])
        if not port:
            return None
        path = check_probe_path("httpGet.path", get.get("path", "/"))
        return str(
            httpx.URL(scheme="http", host="127.0.0.1", port=int(port), raw_path=path.encode())
        )

    def _probe_where(self, probe: dict[str, Any]) -> str:
        return (
            self._probe_url(probe)
            or f"port {probe['httpGet']['port']} (not a container port of the pod)"
        )

    def _probe(self, kubelet: httpx.Client, probe: dict[str, Any], kind: str) -> str | None:
        """One httpGet probe: None when it passes, else the kubelet's event message."""
        url = self._probe_url(probe)
        if url is None:  # connection refused, as the kubelet gets it
            return f"{kind} probe failed: {self._probe_where(probe)}: connection refused"
        try:
            status = kubelet.get(url).status_code
        except httpx.HTTPError as exc:
            return f"{kind} probe failed: Get {url}: {type(exc).__name__}: {str(exc)[:120]}"
        return (
            None
            if 200 <= status < 400
            else f"{kind} probe failed: HTTP probe failed with statuscode: {status}"
        )

    def _check_running(self, pod: Pod) -> None:
        if pod.exit_code() is not None:
            raise StepFailed("rollout.ready", expected="the runtime container keeps running",
                             seen=f"it exited with {pod.exit_code()}: {self.logs()[-600:]}",
                             fix="read the runtime log: start-up refusals name what is missing (CrashLoopBackOff)")  # fmt: skip

    def _running(self) -> Pod:
        if self.pod is None:
            raise TargetUnavailable(
                "no pod is running on the local target"
                + ("" if self.release else ": no release is installed"),
                fix="run runbook 03-production-install first"
                if self.release is None
                else "start it again with runbook 03-production-install (helm upgrade --install)",
            )
        return self.pod

    def _forwarded(self, port: str | int) -> int | None:
        """The 127.0.0.1 port serving a container port given by name or number."""
        ports = self._running().ports
        if isinstance(port, str):
            return ports.get(port)
        container = self.deployment["spec"]["template"]["spec"]["containers"][0]
        name = next(
            (p["name"] for p in container.get("ports", []) if p["containerPort"] == port), None
        )
        return ports.get(name) if name else None

    def forwarded_ports(self) -> dict[str, int]:
        """Named container port → the 127.0.0.1 port it is served on."""
        return dict(self._running().ports)

    def url(self, port_name: str = "http") -> str:
        """``kubectl port-forward``: the 127.0.0.1 URL of a named container port."""
        return f"http://127.0.0.1:{self._running().ports[port_name]}"

    def logs(self) -> str:
        pod = self._running()
        return pod.log_path.read_text(errors="replace") if pod.log_path.exists() else ""

    def stop_pod(self, timeout: float = 10.0) -> int | None:
        """Delete the pod: SIGTERM to the runtime inside the sandbox, then wait (grace period)."""
        pod = self._running()
        self._cancel_config_syncs()  # the next pod mounts the stored data
        pid = pod.process_pid
        if not terminate_tree(pid, timeout):  # past the grace period: SIGKILL, deepest first
            for process in [*reversed(descendants(pid)), pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process, signal.SIGKILL)
            wait_exit(pid, 5)
        code = pod.process.wait(5) if pod.process is not None else pod.exit_code()
        stop_relay(pod.relay_pid)
        LocalIngress(self.workdir).stop()
        self.pod = None
        self.save()
        return code

    def restart_pod(self) -> Pod:
        """``kubectl rollout restart``: a new pod, the same PVC (also after a pod that never
        started, e.g. one whose init container failed)."""
        if self.pod is not None:
            self.stop_pod()
        self.restarts += 1
        return self.start_pod()

    def close(self) -> None:
        """Stop the pod, its ingress and the local Prometheus (objects and the PVC stay, like
        ``helm uninstall`` with a kept volume)."""
        if self.pod is not None:
            self.stop_pod()
        LocalIngress(self.workdir).stop()
        LocalPrometheus(self.workdir).stop()


def _revision(entry: dict[str, Any]) -> Revision:
    return Revision(entry["number"], entry["status"], entry["description"], entry.get("updated", ""),
                    entry["values"], [obj for _, obj in entry["objects"]])  # fmt: skip


def _create_fix(kind: str, name: str, key: str) -> str:
    """How to create a missing Secret or ConfigMap, as a command valid as written."""
    if kind == "Secret":
        return (f"create Secret {name} with runbook 02-secret-setup (its signing_secret and auth_secret "
                f"parameters name it), or: kubectl create secret generic {name} --from-literal={key}=<value>")  # fmt: skip
    return f"kubectl create configmap {name} --from-file={key}=<file>"


def _check_object(kind: str, name: object, data: dict[str, Any]) -> None:
    """A Secret's or ConfigMap's name and keys, as the API server checks them."""
    check_subdomain(f"{kind} metadata.name", name)
    for key in data:
        check_config_key(f"{kind} {name} data key", key)
