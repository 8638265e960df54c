"""helm-unittest's shape in pytest: set values, render through Helm's Go SDK, assert paths."""

from __future__ import annotations

from typing import Any

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.sdk import render
from helm_runbook.chart.smoke import PRODUCTION, SEED  # noqa: F401  (re-exported for the modules)
from helm_runbook.chart.values import merge_values, nested


def template(
    dotted: dict[str, Any] | None = None, *layers: dict[str, Any], release: str = "helm-ai-kernel"
) -> RenderedRelease:
    """Render the chart with ``--set``-like dotted values over optional value layers."""
    return render(
        CHART_DIR, merge_values(*layers, nested(dotted or {})), release=release, namespace="ns1"
    )


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value, or → ``{"secret": name, "key": key}`` for secretKeyRef entries."""
    out: dict[str, Any] = {}
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        out[entry["name"]] = (
            {"secret": ref["name"], "key": ref["key"]} if ref else entry.get("value")
        )
    return out
