"""Prometheus metrics with upstream's names (docs/upstream-contract.md#metrics), really counting.

Each runtime owns a ``CollectorRegistry`` (no process-global state, so tests and several
runtimes in one process do not bleed into each other), with process metrics on it. The runtime
creates one only when ``HELM_METRICS_ENABLED`` is on; label values are bounded (``BoundedLabels``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from helm_runbook.runtime.limits import MAX_METRIC_LABELS

OTHER_LABEL = "_other"


class BoundedLabels:
    """Label values as clients send them, up to ``maximum`` distinct short printable ones; every
    later or odd value folds into ``_other``, so a stream of new tool names cannot grow the
    registry (each label set is kept for the life of the process)."""

    def __init__(self, maximum: int = MAX_METRIC_LABELS) -> None:
        self.maximum = maximum
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.maximum or not (0 < len(value) <= 64 and value.isprintable()):
            return OTHER_LABEL
        self._seen.add(value)
        return value


# Every reconcile_status the reconciler reports (runtime/policy/reconciler.py).
RECONCILE_STATUSES = ("ok", "no_change", "source_error", "no_policy", "validate_error", "refused")


class PolicyCollector(Collector):
    """The reconciler's last status, read at scrape time: ``helm_policy_reconcile_status`` is 1
    for the current status and 0 for the others, ``helm_policy_epoch`` the installed epoch."""

    def __init__(self, status: Callable[[], Mapping[str, Any] | None]) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last = self.status() or {}
        current = str(last.get("reconcile_status", ""))
        family = GaugeMetricFamily(
            "helm_policy_reconcile_status",
            "Last policy reconcile status (1 for the current one)",
            labels=["status"],
        )
        for name in sorted({*RECONCILE_STATUSES, current} - {""}):
            family.add_metric([name], 1.0 if name == current else 0.0)
        yield family
        yield GaugeMetricFamily(
            "helm_policy_epoch", "Installed policy epoch", value=float(last.get("policy_epoch", 0))
        )


def _percentile(samples: deque[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Metrics:
    def __init__(self, window: int = 2048) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.decisions = Counter("helm_decisions", "Governed decisions made", registry=r)
        self.allows = Counter("helm_allows", "Decisions with verdict ALLOW", registry=r)
        self.denials = Counter("helm_denials", "Decisions with verdict DENY", registry=r)
        self.verifications = Counter(
            "helm_verifications", "Evidence and replay verifications run", registry=r
        )
        self.latency = Histogram(
            "helm_decision_latency_seconds",
            "Decision latency, decide + sign + durable receipt",
            buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self._window: deque[float] = deque(maxlen=window)
        Gauge(
            "helm_decision_latency_ms", "Mean decision latency over the recent window", registry=r
        ).set_function(lambda: sum(self._window) / len(self._window) if self._window else 0.0)
        Gauge(
            "helm_decision_latency_p95_ms",
            "p95 decision latency over the recent window",
            registry=r,
        ).set_function(lambda: _percentile(self._window, 0.95))
        Gauge(
            "helm_decision_latency_p99_ms",
            "p99 decision latency over the recent window",
            registry=r,
        ).set_function(lambda: _percentile(self._window, 0.99))
        self.chain_length = Gauge("helm_chain_length", "Receipts in the store", registry=r)
        self.active_agents = Gauge(
            "helm_active_agents", "Distinct sessions seen since start", registry=r
        )
        Gauge(
            "helm_budget_used_pct", "Budget used (no budgets in the reference runtime)", registry=r
        ).set(0)
        self.tool_decisions = Gauge(
            "helm_tool_decisions", "Decisions per tool", ["tool"], registry=r
        )
        self.denial_reasons = Gauge(
            "helm_denial_reasons", "Denials per reason code", ["reason"], registry=r
        )
        self._sessions: set[str] = set()
        self._tool_label = BoundedLabels()
        self._reason_label = BoundedLabels()

    def observe_decision(
        self, *, tool: str, verdict: str, reason_code: str, session: str, seconds: float
    ) -> None:
        self.decisions.inc()
        (self.allows if verdict == "ALLOW" else self.denials).inc()
        if verdict != "ALLOW":
            self.denial_reasons.labels(reason=self._reason_label(reason_code or verdict)).inc()
        self.tool_decisions.labels(tool=self._tool_label(tool)).inc()
        self.latency.observe(seconds)
        self._window.append(seconds * 1000)
        self.chain_length.inc()
        if session not in self._sessions and len(self._sessions) < 100_000:
            self._sessions.add(session)
            self.active_agents.set(len(self._sessions))

    def watch_policy(self, status: Callable[[], Mapping[str, Any] | None]) -> None:
        """Expose the policy reconcile state (``PolicyCollector``) on this registry."""
        self.registry.register(PolicyCollector(status))
