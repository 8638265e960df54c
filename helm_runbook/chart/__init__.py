"""The chart adapter: lint, render and validate ``deploy/helm-chart`` with Helm's own Go SDK."""

from __future__ import annotations

from pathlib import Path

from helm_runbook.chart.manifests import RenderedRelease, ValidationReport, validate
from helm_runbook.chart.sdk import LintReport, lint, render, set_values

CHART_DIR = Path(__file__).resolve().parent.parent.parent / "deploy" / "helm-chart"

__all__ = [
    "CHART_DIR",
    "LintReport",
    "RenderedRelease",
    "ValidationReport",
    "lint",
    "render",
    "set_values",
    "validate",
]
