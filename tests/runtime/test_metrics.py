"""Metric labels stay bounded whatever clients send; with metrics off nothing is registered."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import generate_latest
from starlette.testclient import TestClient

from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.limits import MAX_METRIC_LABELS
from helm_runbook.runtime.metrics import OTHER_LABEL, Metrics
from tests.conftest import TENANT_HEADERS, RuntimeFactory


def _tool_labels(metrics: Metrics) -> set[str]:
    return {
        sample.labels["tool"]
        for family in metrics.registry.collect()
        if family.name == "helm_tool_decisions"
        for sample in family.samples
    }


def test_new_tool_names_fold_into_one_label_past_the_cap(
    make_runtime: RuntimeFactory, client_for: Callable[[Runtime], TestClient]
) -> None:
    runtime = make_runtime(env={"HELM_METRICS_ENABLED": "1"})
    client = client_for(runtime)
    for n in range(MAX_METRIC_LABELS + 40):
        body = {"tool": f"tool-{n}", "effect_level": "E1", "session_id": "s"}
        assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).status_code == 200
    odd = {"tool": "x" * 256, "effect_level": "E1", "session_id": "s"}  # the longest name allowed
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=odd).status_code == 200
    assert runtime.metrics is not None
    labels = _tool_labels(runtime.metrics)
    assert len(labels) == MAX_METRIC_LABELS + 1 and OTHER_LABEL in labels
    assert "tool-0" in labels and f"tool-{MAX_METRIC_LABELS + 39}" not in labels
    assert b'helm_tool_decisions{tool="_other"} 41.0' in generate_latest(runtime.metrics.registry)


def test_metrics_off_registers_nothing(
    make_runtime: RuntimeFactory, client_for: Callable[[Runtime], TestClient]
) -> None:
    runtime = make_runtime()
    body = {"tool": "never-a-label", "effect_level": "E1", "session_id": "s"}
    assert (
        client_for(runtime).post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).status_code
        == 200
    )
    assert runtime.metrics is None


def test_the_policy_reconcile_state_is_exported(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(env={"HELM_METRICS_ENABLED": "1"})
    assert runtime.metrics is not None
    text = generate_latest(runtime.metrics.registry).decode()
    assert 'helm_policy_reconcile_status{status="ok"} 1.0' in text
    assert 'helm_policy_reconcile_status{status="validate_error"} 0.0' in text
    epoch = runtime.reconciler.last_status["policy_epoch"]  # type: ignore[index]
    assert (
        f"helm_policy_epoch {float(epoch)!r}" in text
        or f"helm_policy_epoch {float(epoch):.6e}" in text
    )
