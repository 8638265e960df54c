"""The ``local`` target: runs a rendered release on this machine exactly as its objects say.

The Deployment's pod is assembled from the rendered objects: Secret and ConfigMap volumes become
directories with their files and modes (``items``, ``defaultMode``), the PVC is a directory that
outlives pod restarts, emptyDirs are fresh per pod, env comes from ``value``/``secretKeyRef``/
``configMapKeyRef``. Each container runs in a bubblewrap sandbox as the pod's uid/gid with its
volumes at their mount paths (``/data``, ``/etc/helm-ai-kernel/policy``, ...): first the init
container's shell script, then the runtime (the image's entrypoint ``helm-ai-kernel`` is this
package's runtime) with the rendered args.

One deliberate difference, the one ``kubectl port-forward`` makes: each container port is served
on a free 127.0.0.1 port (servers here bind loopback only), so ``--addr`` becomes 127.0.0.1 and
``--port``/``HELM_HEALTH_PORT``/``HELM_METRICS_PORT`` become the forwarded ports.
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
from helm_runbook.process import free_port
from helm_runbook.targets.base import Uninstalled, kept_on_uninstall

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
PORT_ENV = {"health": "HELM_HEALTH_PORT", "metrics": "HELM_METRICS_PORT"}


def bubblewrap() -> str:
    """The bwrap binary, or TargetUnavailable with the install command."""
    found = shutil.which("bwrap")
    if not found:
        raise TargetUnavailable(
            "the local target needs bubblewrap (bwrap) to give the pod its own mounts",
            fix="apt-get install -y bubblewrap",
        )
    return found


@dataclass
class Pod:
    """One running incarnation of the Deployment's pod (possibly started by another process)."""

    number: int
    process: subprocess.Popen[bytes] | None
    ports: dict[str, int]  # container port name -> forwarded 127.0.0.1 port
    log_path: Path
    pid: int = 0

    @property
    def process_pid(self) -> int:
        return self.process.pid if self.process is not None else self.pid

    def exit_code(self) -> int | None:
        """None while running."""
        if self.process is not None:
            return self.process.poll()
        return None if _alive(self.pid) else -1


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

    # -- state on disk (the "cluster" outlives a notebook kernel) ----------------------------

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def save(self) -> None:
        """Persist objects and the running pod (0600: Secrets live here, as in etcd)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = {
            "namespace": self.namespace,
            "secrets": {n: {k: base64.b64encode(v).decode() for k, v in d.items()} for n, d in self.secrets.items()},
            "config_maps": self.config_maps,
            "release": None if self.release is None else {
                "release": self.release.release, "namespace": self.release.namespace,
                "objects": self.release.objects, "notes": self.release.notes, "values": self.release.values,
            },
            "restarts": self.restarts,
            "pod": None if self.pod is None else {
                "number": self.pod.number, "pid": self.pod.process_pid, "ports": self.pod.ports,
                "log_path": str(self.pod.log_path),
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
        pod = state["pod"]
        if pod and _alive(pod["pid"]):
            target.pod = Pod(pod["number"], None, pod["ports"], Path(pod["log_path"]), pod["pid"])
        return target

    # -- objects ------------------------------------------------------------------------

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        """``kubectl create secret generic NAME --from-literal=...`` (values never logged)."""
        if name in self.secrets:
            raise StepFailed(f"secrets.{name}", expected=f"no Secret {name} yet", seen="it already exists",
                             fix=f"kubectl delete secret {name}, or reuse it")  # fmt: skip
        self.secrets[name] = {k: v.encode() for k, v in data.items()}

    def apply_config_map(self, name: str, data: dict[str, str]) -> None:
        """``kubectl apply`` of a ConfigMap: running pods see the new files (as the kubelet syncs
        mounted ConfigMaps without a restart); nothing else happens until the runtime reconciles."""
        self.config_maps[name] = dict(data)
        if self.pod is not None and self.release is not None:
            pod_dir = self.workdir / "pods" / str(self.pod.number) / "volumes"
            for volume in self.deployment["spec"]["template"]["spec"].get("volumes", []):
                if volume.get("configMap", {}).get("name") == name:
                    self._volume(volume, pod_dir)
        self.save()

    def apply(self, release: RenderedRelease) -> None:
        """``helm install``: store the release's Secrets and ConfigMaps, keep the Deployment."""
        for obj in release.of_kind("Secret"):
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data |= {k: v.encode() for k, v in (obj.get("stringData") or {}).items()}
            self.secrets[obj["metadata"]["name"]] = data
        for obj in release.of_kind("ConfigMap"):
            self.config_maps[obj["metadata"]["name"]] = dict(obj.get("data") or {})
        self.release = release

    def install(self, values: dict[str, Any], release: str = "helm-ai-kernel") -> RenderedRelease:
        """``helm upgrade --install``: render with Helm's SDK (guards included), replace the pod."""
        rendered = render(CHART_DIR, values, release=release, namespace=self.namespace)
        if self.pod is not None:
            self.stop_pod()
        self.apply(rendered)
        self.start_pod()
        return rendered

    def uninstall(self, release: str = "helm-ai-kernel") -> Uninstalled:
        """``helm uninstall``: stop the pod, delete the release's Secrets, ConfigMaps and claim
        directories, except objects annotated ``helm.sh/resource-policy: keep``."""
        if self.release is None or self.release.release != release:
            raise TargetUnavailable(f"release {release} is not installed on the local target",
                                    fix="run the install step first")  # fmt: skip
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
        self.save()
        return Uninstalled(values=values, deleted=deleted, kept=kept)

    @property
    def deployment(self) -> dict[str, Any]:
        if self.release is None:
            raise TargetUnavailable(
                "nothing installed on the local target", fix="run the install step first"
            )
        return self.release.get("Deployment")

    def claim_phase(self, claim: str) -> str | None:
        """A claim the release rendered is always Bound here (its directory is the volume)."""
        if self.release is None:
            return None
        names = {obj["metadata"]["name"] for obj in self.release.of_kind("PersistentVolumeClaim")}
        return "Bound" if claim in names else None

    def pvc_dir(self, claim: str) -> Path:
        path = self.workdir / "pvc" / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- pods -----------------------------------------------------------------------------

    def start_pod(self) -> Pod:
        """Materialise volumes, run the init container to completion, then start the runtime."""
        if self.pod is not None:
            raise TargetUnavailable("a pod is already running", fix="stop or restart it")
        spec = self.deployment["spec"]["template"]["spec"]
        number = self.restarts
        pod_dir = self.workdir / "pods" / str(number)
        shutil.rmtree(pod_dir, ignore_errors=True)
        volumes = {v["name"]: self._volume(v, pod_dir / "volumes") for v in spec.get("volumes", [])}
        uid = int(spec.get("securityContext", {}).get("runAsUser", 65534))
        gid = int(spec.get("securityContext", {}).get("runAsGroup", 65534))
        for init in spec.get("initContainers", []):
            self._run_init(init, volumes, uid, gid, pod_dir)
        container = spec["containers"][0]
        ports = {p["name"]: free_port() for p in container.get("ports", [])}
        env = self._env(container)
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
        command = [sys.executable, "-m", "helm_runbook.runtime", *args]
        log_path = pod_dir / "helm-ai-kernel.log"
        pid = _launch_detached(
            self._sandbox(command, container, volumes, uid, gid, env), log_path, pod_dir / "pod.pid"
        )
        self.pod = Pod(number, None, ports, log_path, pid)
        self.save()
        return self.pod

    def _volume(self, volume: dict[str, Any], root: Path) -> Path:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            return self.pvc_dir(volume["persistentVolumeClaim"]["claimName"])
        target: Path = root / str(name)
        target.mkdir(parents=True, exist_ok=True)
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
                             fix=f"create the {kind} (kubectl create {kind.lower()} {ref} ...) or fix its name in values")  # fmt: skip
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] not in data:
                raise StepFailed("install.volumes", expected=f"key {item['key']} in {kind} {ref}",
                                 seen=f"keys {sorted(data)}", fix=f"add {item['key']} to {kind} {ref}")  # fmt: skip
            path = target / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[item["key"]])
            path.chmod(int(item.get("mode", mode)))
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
                    fix=f"create {kind} {ref['name']} with key {ref['key']}",
                )  # fmt: skip
            env[name] = value.decode()
        return env

    def _sandbox(self, command: list[str], container: dict[str, Any], volumes: dict[str, Path], uid: int, gid: int,
                 env: dict[str, str]) -> list[str]:  # fmt: skip
        args = [bubblewrap(), "--unshare-user", "--uid", str(uid), "--gid", str(gid),
                "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--proc", "/proc", "--dev", "/dev",
                "--ro-bind", "/usr", "/usr"]  # fmt: skip
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
        mounted = set()
        for mount in container.get("volumeMounts", []):
            flag = "--ro-bind" if mount.get("readOnly") else "--bind"
            args += [flag, str(volumes[mount["name"]]), mount["mountPath"]]
            mounted.add(mount["mountPath"])
        if "/tmp" not in mounted:
            args += ["--tmpfs", "/tmp"]
        # The interpreter and this project last: a volume at /tmp (the chart's emptyDir) must not
        # hide a checkout or venv that lives under /tmp.
        for prefix in sorted({sys.base_prefix, sys.prefix, str(PROJECT_ROOT)}):
            args += ["--ro-bind", prefix, prefix]
        args += ["--chdir", "/", "--clearenv"]
        for key, value in {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
                           **env}.items():  # fmt: skip
            args += ["--setenv", key, value]
        return [*args, *command]

    def _run_init(
        self, init: dict[str, Any], volumes: dict[str, Path], uid: int, gid: int, pod_dir: Path
    ) -> None:
        command = [*init.get("command", []), *init.get("args", [])]
        ctx = init.get("securityContext", {})
        proc = subprocess.run(
            self._sandbox(command, init, volumes, int(ctx.get("runAsUser", uid)), int(ctx.get("runAsGroup", gid)),
                          self._env(init)),
            capture_output=True, timeout=60,
        )  # fmt: skip
        (pod_dir / f"{init['name']}.log").write_bytes(proc.stdout + proc.stderr)
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
        probe = self.deployment["spec"]["template"]["spec"]["containers"][0].get(
            "readinessProbe", {}
        )
        get = probe.get("httpGet", {"path": "/health", "port": "health"})
        port = self._forwarded(get["port"])
        # A probe on a port no container declares gets connection refused, as the kubelet would.
        url = f"http://127.0.0.1:{port}{get.get('path', '/')}" if port else None
        start = time.monotonic()
        attempts = 0
        while time.monotonic() - start < timeout:
            attempts += 1
            if on_poll:
                on_poll(attempts)
            if pod.exit_code() is not None:
                raise StepFailed("rollout.ready", expected="the runtime container keeps running",
                                 seen=f"it exited with {pod.exit_code()}: {self.logs()[-600:]}",
                                 fix="read the runtime log: start-up refusals name what is missing (CrashLoopBackOff)")  # fmt: skip
            try:
                if (
                    url
                    and httpx.get(url, timeout=probe.get("timeoutSeconds", 1)).status_code == 200
                ):
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        where = url or f"port {get['port']} (not a container port of the pod)"
        raise StepFailed("rollout.ready", expected=f"readiness probe {where} answers 200 within {timeout:g}s",
                         seen=f"no answer after {attempts} attempts", fix="inspect HELM_HEALTH_PORT and the pod logs")  # fmt: skip

    def _running(self) -> Pod:
        if self.pod is None:
            raise TargetUnavailable(
                "no pod is running on the local target", fix="run the install step"
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
        pid = pod.process_pid
        for child in _descendants(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pod.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if pod.exit_code() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        code = pod.process.wait(5) if pod.process is not None else pod.exit_code()
        self.pod = None
        self.save()
        return code

    def restart_pod(self) -> Pod:
        """``kubectl rollout restart``: a new pod, the same PVC."""
        self.stop_pod()
        self.restarts += 1
        return self.start_pod()

    def close(self) -> None:
        """Stop the pod (objects and the PVC stay, like ``helm uninstall`` with a kept volume)."""
        if self.pod is not None:
            self.stop_pod()


def _launch_detached(command: list[str], log_path: Path, pid_file: Path) -> int:
    """Start ``command`` re-parented away from this process (a pod outlives the kubectl or
    notebook kernel that created it: ipykernel signals its own children when it shuts down)."""
    script = '"$@" >"$POD_LOG" 2>&1 </dev/null & echo $! >"$POD_PID"'
    subprocess.run(
        ["/bin/sh", "-c", script, "sh", *command],
        env={**os.environ, "POD_LOG": str(log_path), "POD_PID": str(pid_file)},
        start_new_session=True, check=True, timeout=10,
    )  # fmt: skip
    return int(pid_file.read_text().strip())


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (deepest last), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            out.append(child)
            queue.append(child)
    return out
