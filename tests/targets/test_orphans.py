"""Nothing is orphaned: ``helm-runbook stop`` finds the local target's pod and relay by their
recorded identity after its workdir was deleted (``rm -rf build``), and never touches a process
recorded by another checkout or a pid that now belongs to another process."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from helm_runbook import runner
from helm_runbook.chart import CHART_DIR, render
from helm_runbook.cli import main
from helm_runbook.targets import started
from helm_runbook.targets.local import LocalTarget
from helm_runbook.targets.pod import alive

pytestmark = pytest.mark.slow
AUTH = {"helm": {"auth": {"existingSecret": "helm-auth"}}}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry of its own: the test never reads (or stops) what other tests recorded."""
    directory = tmp_path / "state"
    monkeypatch.setenv(started.STATE_DIR_ENV, str(directory))
    return directory / "processes"


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process this test did not start as a pod: it must survive every stop."""
    process = subprocess.Popen(["sleep", "120"])
    yield process
    process.kill()
    process.wait(5)


def _record_as(entry: started.Started, registry: Path) -> Path:
    """Write ``entry`` as its checkout would have recorded it."""
    registry.mkdir(parents=True, exist_ok=True)
    path = registry / f"{started._key(entry.checkout)}-{entry.pid}-{entry.start_ticks}.json"
    path.write_text(json.dumps(asdict(entry)))
    return path


def test_stop_finds_the_pod_and_relay_after_rm_rf_build_and_nothing_else(
    tmp_path: Path,
    registry: Path,
    bystander: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build = tmp_path / "build"
    target = LocalTarget(build / "local-target")
    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    target.apply(render(CHART_DIR, AUTH))
    pod = target.start_pod()
    pod_pid, relay_pid = pod.process_pid, pod.relay_pid
    try:
        # ready first: a sandbox still mounting its volumes exits when they vanish, and the
        # operator's `rm -rf build` comes long after the pod started
        target.wait_ready(60)
        assert alive(pod_pid) and alive(relay_pid)
        kinds = {e.pid: e.kind for e in started.recorded(build / "local-target")}
        assert kinds == {pod_pid: "pod", relay_pid: "network relay"}
        # another checkout's pod (the same kind of record, its own checkout), and a record of
        # this checkout whose pid now belongs to another process (another start time)
        mine = started.remember(bystander.pid, "pod", tmp_path / "gone")
        assert mine is not None
        mine.file.unlink()
        other = _record_as(replace(mine, checkout="/work/wt-other"), registry)
        reused = _record_as(replace(mine, start_ticks=mine.start_ticks - 1), registry)

        shutil.rmtree(build)  # rm -rf build: no state.json, no pidfile left
        monkeypatch.setattr(runner, "WORKDIR", build / "local-target")
        assert main(["stop"]) == 0
        out = capsys.readouterr().out
        assert f"stopped pod (pid {pod_pid})" in out, out
        assert f"stopped network relay (pid {relay_pid})" in out, out
        assert "its workdir deleted" in out
        assert not alive(pod_pid) and not alive(relay_pid)
        assert bystander.poll() is None  # neither another checkout's record nor a reused pid
        assert other.exists()  # another checkout's record is never read, let alone removed
        assert not reused.exists()  # a stale record of this checkout is dropped
        assert main(["stop"]) == 0
        assert "nothing to stop" in capsys.readouterr().out
    finally:
        for pid in (pod_pid, relay_pid):
            if alive(pid):
                started.stop([e for e in started.recorded() if e.pid == pid])


def test_a_record_names_the_process_only_while_it_is_the_one_started(
    registry: Path, bystander: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    entry = started.remember(bystander.pid, "nginx", tmp_path)
    assert entry is not None and entry.running
    assert started.recorded(tmp_path) == [entry]
    assert not replace(entry, boot_id="another-boot").running
    assert not replace(entry, start_ticks=entry.start_ticks + 1).running
    bystander.kill()
    bystander.wait(5)
    assert started.recorded(tmp_path) == [] and not entry.file.exists()
