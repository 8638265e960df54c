"""The pod's process bookkeeping (targets/pod.py) on real processes."""

from __future__ import annotations

import subprocess

from helm_runbook.targets.pod import alive, wait_exit


def test_wait_exit_returns_when_the_process_exits_and_not_before() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert not wait_exit(proc.pid, 0.05), "a running process has not exited"
        proc.terminate()
        assert wait_exit(proc.pid, 10), "the exit (a zombie until reaped) wakes the wait"
        assert not alive(proc.pid)
    finally:
        proc.kill()
        proc.wait(5)
    assert wait_exit(proc.pid, 0.05), "a reaped pid has exited"
