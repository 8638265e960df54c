"""The pod's processes on this machine: the bubblewrap sandbox a container runs in, the relay
that is its network (``targets/netrelay.py``), and the process bookkeeping a kubelet does
(identity checks, liveness, descendants). ``targets/local.py`` assembles a pod from the rendered
objects and calls these."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.standins.process import free_port
from helm_runbook.targets.hostfiles import private_file
from helm_runbook.targets.validation import check_id

TERMINATE_RESCAN_S = 0.1  # how often a stop looks for pod processes started since its SIGTERM
NETRELAY = Path(__file__).resolve().parent / "netrelay.py"  # run as a script: stdlib imports only


POD_NET_DIR = "/run/helm-pod-net"  # where the pod sees the relays' socket directory


LOOPBACK = {"127.0.0.1", "localhost"}


# What the pod writes through host-backed volumes (its database, root.key) is owner-only.
POD_UMASK = 0o077


# What a container gets from its image in the absence of declared env (PATH, HOME).
POD_BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def bubblewrap() -> str:
    """The bwrap binary, or TargetUnavailable with the install command."""
    found = shutil.which("bwrap")
    if not found:
        raise TargetUnavailable(
            "the local target needs bubblewrap (bwrap) to give the pod its own mounts",
            fix="apt-get install -y bubblewrap",
        )
    return found


@dataclass(frozen=True)
class Sandboxed:
    """A bwrap command line (no values of the pod's env on it) and the exact env to start it with."""

    argv: list[str]
    env: dict[str, str]


@dataclass
class Pod:
    """One running incarnation of the Deployment's pod (possibly started by another process)."""

    number: int
    process: subprocess.Popen[bytes] | None
    ports: dict[str, int]  # container port name -> forwarded 127.0.0.1 port
    log_path: Path
    pid: int = 0
    relay_pid: int = 0  # the host side of the pod's network (targets/netrelay.py)

    @property
    def process_pid(self) -> int:
        return self.process.pid if self.process is not None else self.pid

    def exit_code(self) -> int | None:
        """None while running."""
        if self.process is not None:
            return self.process.poll()
        return None if alive(self.pid) else -1


def owner_only_mount_point(path: str, container: dict[str, Any], volumes: dict[str, Path]) -> None:
    """Create, owner-only, the directories bwrap would create (0755) on the host to bind ``path``
    when it lies inside a mounted volume (a checkout or venv under /tmp, the chart's emptyDir)."""
    for mount in container.get("volumeMounts", []):
        mount_path = Path(mount["mountPath"])
        if Path(path) == mount_path or mount_path not in Path(path).parents:
            continue
        current = volumes[mount["name"]]
        for part in Path(path).relative_to(mount_path).parts:
            current = current / part
            if not current.exists():
                current.mkdir(mode=0o700)


def launch_detached(sandboxed: Sandboxed, log_path: Path, pid_file: Path) -> int:
    """Start the sandbox re-parented away from this process (a pod outlives the kubectl or
    notebook kernel that created it: ipykernel signals its own children when it shuts down).

    The shell in between gets exactly the pod's environment (it passes it on to bwrap) and the
    log and pid paths as arguments, so no variable of its own reaches the pod."""
    script = 'log=$1 pidfile=$2; shift 2; "$@" >>"$log" 2>&1 </dev/null & echo $! >"$pidfile"'
    subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(log_path), str(pid_file), *sandboxed.argv],
        env=sandboxed.env, start_new_session=True, check=True, timeout=10, umask=POD_UMASK,
    )  # fmt: skip
    return int(pid_file.read_text().strip())


def egress_ports(env: dict[str, str]) -> list[int]:
    """The host loopback ports the pod may reach: those of the URLs its env names (the upstream,
    ``DATABASE_URL``, a control plane), as a pod reaches the Services its config names."""
    ports = set()
    for value in env.values():
        if "://" not in value:
            continue
        with contextlib.suppress(ValueError):
            url = urlsplit(value)
            if url.hostname in LOOPBACK and url.port:
                ports.add(url.port)
    return sorted(ports)


def pick_ports(names: list[str], avoid: set[int]) -> dict[str, int]:
    """A distinct free host port per container port, none of them an egress port (an upstream
    the runbook starts later on a port it picked earlier must still find it free)."""
    picked: dict[str, int] = {}
    for name in names:
        for _ in range(100):
            port = free_port()
            if port not in avoid and port not in picked.values():
                picked[name] = port
                break
        else:
            raise TargetUnavailable(
                "no free 127.0.0.1 port to forward", fix="free some local ports"
            )
    return picked


def start_host_relay(net_dir: Path, inbound: str, outbound: str, pod_dir: Path) -> int:
    """The host side of the pod's network, listening before the pod starts (its first egress,
    the database, may come at once); StepFailed with its log when it cannot bind."""
    command = [
        sys.executable,
        "-I",
        str(NETRELAY),
        "host",
        str(net_dir),
        "--in",
        inbound,
        "--out",
        outbound,
    ]
    log_path = private_file(pod_dir / "net-relay.log")
    pid = launch_detached(
        Sandboxed(command, dict(os.environ)), log_path, private_file(pod_dir / "net-relay.pid")
    )
    wanted = [net_dir / f"out-{p}.sock" for p in outbound.split(",") if p]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(pid):
        if all(path.exists() for path in wanted) and all(
            listening(int(p)) for p in inbound.split(",") if p
        ):
            return pid
        time.sleep(0.02)
    stop_relay(pid)
    raise StepFailed("install.network", expected="the pod's port relay listening within 10s",
                     seen=log_path.read_text(errors="replace")[-600:] or "no output",
                     fix="free the forwarded ports (another process holds one) and install again")  # fmt: skip


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def stop_relay(pid: int) -> None:
    """SIGTERM the host relay (only if ``pid`` still is one), then wait briefly."""
    try:
        if not pid or b"netrelay.py" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
    except OSError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_exit(pid, 5):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def pod_identity(spec: dict[str, Any], container: dict[str, Any]) -> tuple[int, int]:
    """uid and gid of a container (its securityContext over the pod's), as the kubelet checks them."""
    pod = spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    uid = int(own.get("runAsUser", pod.get("runAsUser", 65534)))
    gid = int(own.get("runAsGroup", pod.get("runAsGroup", 65534)))
    if own.get("runAsNonRoot", pod.get("runAsNonRoot")) and uid == 0:
        raise StepFailed(f"install.{container['name']}", expected="runAsNonRoot with a non-zero runAsUser",
                         seen="runAsUser 0: the container would fail with CreateContainerConfigError",
                         fix="set podSecurityContext.runAsUser to a non-root uid (65534)")  # fmt: skip
    fs_group = pod_fs_group(spec)
    if fs_group is not None and fs_group != gid:
        raise StepFailed(f"install.{container['name']}", expected=f"fsGroup equal to runAsGroup {gid}",
                         seen=f"fsGroup {fs_group}: the local sandbox maps exactly one uid and one gid, so a "
                              "second group cannot own the volumes",
                         fix="set podSecurityContext.fsGroup to runAsGroup for the local target, or use a cluster")  # fmt: skip
    return uid, gid


def pod_fs_group(spec: dict[str, Any]) -> int | None:
    value = (spec.get("securityContext") or {}).get("fsGroup")
    return None if value is None else check_id("spec.securityContext.fsGroup", value)


def terminate_tree(pid: int, grace: float) -> bool:
    """SIGTERM every descendant of ``pid`` (not ``pid``: the sandbox, which exits with them),
    then wait up to ``grace`` seconds for ``pid`` to exit; True when it did.

    A pod stopped while it starts gains processes after the first look (the relay, which
    ignores SIGTERM and waits for its container, starts the container a moment later), so the
    tree is looked at again every ``TERMINATE_RESCAN_S`` and each newcomer gets its SIGTERM too;
    the exit itself still wakes the wait at once."""
    deadline = time.monotonic() + grace
    signalled: set[int] = set()
    while True:
        for child in descendants(pid):
            if child not in signalled:
                signalled.add(child)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
        left = deadline - time.monotonic()
        if wait_exit(pid, min(max(left, 0), TERMINATE_RESCAN_S)):
            return True
        if left <= TERMINATE_RESCAN_S:
            return False


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (a zombie counts), woken by the exit itself through a
    pidfd (Linux 5.3+), else by 20 ms polls; True when it exited within ``timeout``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd: poll
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not alive(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(max(timeout, 0) * 1000)
    finally:
        os.close(pidfd)
    return not alive(pid)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> list[int]:
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
