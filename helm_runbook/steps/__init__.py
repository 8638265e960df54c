"""Runbook steps: one function per step, each returning a ``StepReport`` (a table in Jupyter and
in a terminal) and raising ``StepFailed`` (step, expected, seen, fix) when a check fails."""

from __future__ import annotations

from helm_runbook.steps.chart import (
    chart_smoke,
    expect_refusal,
    lint_chart,
    render_guide_command,
    render_release,
)
from helm_runbook.steps.deploy import (
    install,
    restart_pod,
    running_pod,
    uninstall_and_reinstall,
    wait_for_rollout,
)
from helm_runbook.steps.secrets import prepare_secrets
from helm_runbook.steps.smoke import smoke_check, verify_receipts

__all__ = [
    "chart_smoke",
    "expect_refusal",
    "install",
    "lint_chart",
    "prepare_secrets",
    "render_guide_command",
    "render_release",
    "restart_pod",
    "running_pod",
    "smoke_check",
    "uninstall_and_reinstall",
    "verify_receipts",
    "wait_for_rollout",
]
