"""helm-runbook: executable runbooks and a reference runtime for the HELM AI Kernel chart."""

from __future__ import annotations

from helm_runbook.errors import (
    ChartError,
    ReceiptInvalid,
    RenderError,
    RunbookError,
    SecretMaterialMissing,
    StepFailed,
    TargetUnavailable,
    ValuesError,
)

__version__ = "0.1.0"

__all__ = [
    "ChartError",
    "ReceiptInvalid",
    "RenderError",
    "RunbookError",
    "SecretMaterialMissing",
    "StepFailed",
    "TargetUnavailable",
    "ValuesError",
    "__version__",
]
