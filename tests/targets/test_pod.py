"""The pod's process bookkeeping (targets/pod.py) on real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from helm_runbook.targets.pod import alive, descendants, terminate_tree, wait_exit

# A pod's relay as it starts: it ignores SIGTERM (it waits for its container instead) and starts
# the container only a moment later, so a stop that lists the pod's processes once, early, missed
# the container and waited out the whole grace period before its SIGKILL.
LATE_CONTAINER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: None)
time.sleep(0.3)
code = subprocess.call(["sleep", "30"])
sys.exit(128 - code if code < 0 else code)
"""


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


def test_a_container_started_after_the_stop_began_still_gets_its_sigterm() -> None:
    relay = subprocess.Popen([sys.executable, "-c", LATE_CONTAINER])
    try:
        assert terminate_tree(relay.pid, 5), "the late container was signalled within the grace"
        assert relay.wait(5) == 128 + signal.SIGTERM, "the container ended by SIGTERM, not SIGKILL"
    finally:
        for pid in [*descendants(relay.pid), relay.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        relay.wait(5)
