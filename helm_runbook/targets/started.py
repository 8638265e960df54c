"""The long-lived processes a local target starts (pod sandboxes, network relays, nginx,
Prometheus), recorded outside ``build/`` so that ``helm-runbook stop`` finds them even after
``rm -rf build``.

Each record names one process by its identity (pid, its start time in clock ticks since boot,
and the boot id: a pid reused by another process never matches), the checkout that started it
and the workdir it belongs to. Only records of this checkout are ever read back, and a process is
signalled only while it still is the one recorded: another checkout's pods, or a process that
happens to have a matching name, are never touched. Records live in
``$HELM_RUNBOOK_STATE_DIR`` (else ``$XDG_STATE_HOME/helm-runbook``, else
``~/.local/state/helm-runbook``), one owner-only JSON file each; a record whose process has
exited is dropped when next read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR_ENV = "HELM_RUNBOOK_STATE_DIR"
CHECKOUT = Path(__file__).resolve().parents[2]
MAX_RECORDS = 4096  # read back at most this many (a record is one small file per process)
MAX_RECORD_BYTES = 4096


def records_dir() -> Path:
    base = os.environ.get(STATE_DIR_ENV) or ""
    if not base:
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        base = str(Path(xdg) / "helm-runbook")
    return Path(base) / "processes"


@dataclass(frozen=True)
class Started:
    """One process a local target started, as recorded when it started."""

    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: when it started, in clock ticks since boot
    boot_id: str
    kind: str  # pod, network relay, nginx, prometheus
    workdir: str
    checkout: str

    @property
    def running(self) -> bool:
        """Whether the recorded process still runs (the same process, not a reused pid)."""
        return self.boot_id == _boot_id() and _start_ticks(self.pid) == self.start_ticks

    @property
    def file(self) -> Path:
        return records_dir() / f"{_key(self.checkout)}-{self.pid}-{self.start_ticks}.json"


def _key(checkout: str) -> str:
    return hashlib.sha256(checkout.encode()).hexdigest()[:16]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int:
    """The process's start time (clock ticks since boot); 0 when it does not run (or is a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return 0 if fields[0] == "Z" else int(fields[19])


def remember(pid: int, kind: str, workdir: Path) -> Started | None:
    """Record ``pid`` (just started by this checkout for ``workdir``); None when it already
    exited. Recording never fails a start: the record only helps clean up later."""
    ticks = _start_ticks(pid)
    if not ticks:
        return None
    entry = Started(pid, ticks, _boot_id(), kind, str(workdir.resolve()), str(CHECKOUT))
    with contextlib.suppress(OSError):
        directory = records_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(entry.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(entry), handle)
    return entry


def recorded(workdir: Path | None = None) -> list[Started]:
    """This checkout's recorded processes that still run (of ``workdir`` only, if given); the
    records of exited processes are removed on the way."""
    directory = records_dir()
    mine = f"{_key(str(CHECKOUT))}-"
    found: list[Started] = []
    with contextlib.suppress(OSError):
        for path in sorted(directory.iterdir())[:MAX_RECORDS]:
            if not path.name.startswith(mine) or not path.name.endswith(".json"):
                continue
            if path.lstat().st_uid != os.getuid():  # only what this user recorded is believed
                continue
            entry = _read(path)
            if entry is None or entry.checkout != str(CHECKOUT):
                continue
            if not entry.running:
                path.unlink(missing_ok=True)
                continue
            if workdir is None or entry.workdir == str(workdir.resolve()):
                found.append(entry)
    return found


def _read(path: Path) -> Started | None:
    try:
        with path.open("rb") as handle:
            data = json.loads(handle.read(MAX_RECORD_BYTES))
        return Started(int(data["pid"]), int(data["start_ticks"]), str(data["boot_id"]),
                       str(data["kind"]), str(data["workdir"]), str(data["checkout"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def orphans() -> list[Started]:
    """What ``helm-runbook stop`` stops without a workdir: this checkout's processes whose
    workdir is in the checkout (``build/``) or no longer exists (nothing can attach to them)."""
    return [
        e
        for e in recorded()
        if Path(e.workdir).is_relative_to(CHECKOUT) or not Path(e.workdir, "state.json").exists()
    ]


def stop(entries: list[Started], grace: float = 10.0) -> list[Started]:
    """SIGTERM each process still recorded as running (a pod's sandbox: its processes first, as
    a pod deletion does), SIGKILL after ``grace``; returns those stopped."""
    from helm_runbook.targets.pod import descendants, terminate_tree, wait_exit

    stopped = []
    # pods before their relays: a relay that goes first can take its pod down with it, which
    # would then be gone uncounted (and "stopped" would not say so)
    for entry in sorted(entries, key=lambda e: e.kind != "pod"):
        if not entry.running:
            entry.file.unlink(missing_ok=True)
            continue
        if entry.kind == "pod":
            done = terminate_tree(entry.pid, grace)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry.pid, signal.SIGTERM)
            done = wait_exit(entry.pid, grace)
        if not done and entry.running:
            for process in [*reversed(descendants(entry.pid)), entry.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process, signal.SIGKILL)
            wait_exit(entry.pid, 5)
        entry.file.unlink(missing_ok=True)
        stopped.append(entry)
    return stopped


__all__ = ["Started", "orphans", "recorded", "remember", "stop"]
