"""The stand-in upstream for smoke checks: served where the installed release's
``HELM_UPSTREAM_URL`` points, so the governed proxy has something real to forward to."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from helm_runbook.errors import StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.standins.mock_upstream import MockUpstreamServer
from helm_runbook.targets.base import Target

#: Stand-ins serving in this process, by port: running the step again (a cell re-run in
#: JupyterLab) finds the one already serving instead of failing on a busy port. They are
#: background threads, so they end with the kernel.
_SERVING: dict[int, MockUpstreamServer] = {}


def start_stand_in_upstream(target: Target) -> StepReport:
    """Serve the OpenAI-compatible stand-in on the loopback port of the release's upstream URL.

    Only the local target's pod shares this machine's loopback: on a cluster the release's own
    upstream serves the proxy check, and no stand-in is started (``values["stand_in"]`` False).
    """
    start = time.perf_counter()
    env = {
        e["name"]: e.get("value", "")
        for e in target.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    url = env.get("HELM_UPSTREAM_URL", "")
    if target.name != "local":
        report = StepReport("upstream.start", "the release's own upstream", ["upstream", "serves"],
                            [[url or "none configured", "the proxy check goes to it (no stand-in on a cluster)"]],
                            seconds=time.perf_counter() - start, values={"stand_in": False})  # fmt: skip
        record(report)
        return report
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or not parts.port:
        raise StepFailed("upstream.start", expected="helm.proxy.upstream on http://127.0.0.1:<port>/v1 for the local target",
                         seen=url or "no HELM_UPSTREAM_URL", fix="install with helm.proxy.upstream pointing at 127.0.0.1")  # fmt: skip
    already = parts.port in _SERVING
    if not already:
        _SERVING[parts.port] = MockUpstreamServer(port=parts.port).__enter__()
    server = _SERVING[parts.port]
    report = StepReport("upstream.start", "stand-in OpenAI-compatible upstream", ["upstream", "serves"],
                        [[server.url, "POST /v1/chat/completions (deterministic echo)"
                          + (", already serving" if already else "")]],
                        seconds=time.perf_counter() - start, values={"stand_in": True, "port": parts.port})  # fmt: skip
    record(report)
    return report


def stop_stand_in_upstreams() -> int:
    """Stop every stand-in this process serves; returns how many were stopped."""
    stopped = 0
    while _SERVING:
        _, server = _SERVING.popitem()
        server.close()
        stopped += 1
    return stopped
