"""Errors an operator can act on.

Every error names what went wrong and carries a ``fix`` line, in the tone of the deployment
guide's troubleshooting table.

    RunbookError
    ├── ChartError            a chart failed to lint or render (carries Helm's message)
    │   ├── RenderError
    │   └── ValuesError
    ├── SecretMaterialMissing key material a step needs is absent
    ├── TargetUnavailable     the local or kube target cannot be reached
    ├── StepFailed            a runbook check saw something other than what it expected
    └── ReceiptInvalid        a receipt or chain failed offline verification
"""

from __future__ import annotations


class RunbookError(Exception):
    """Base of every error the runbook raises on purpose; ``fix`` says what to do next."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\nfix: {self.fix}" if self.fix else self.message


class ChartError(RunbookError):
    """The chart did not lint or render; ``helm_message`` is Helm's own text."""

    def __init__(self, message: str, *, fix: str = "", helm_message: str = "") -> None:
        super().__init__(message, fix=fix)
        self.helm_message = helm_message


class RenderError(ChartError):
    """A render failed, usually a ``fail`` guard in ``_validate.tpl``."""


class ValuesError(ChartError):
    """Values do not meet ``values.schema.json``."""


class SecretMaterialMissing(RunbookError):
    """Key material (signing seed, API key) that a step needs is absent."""


class TargetUnavailable(RunbookError):
    """The deployment target (local sandbox or kube context) cannot be reached."""


class StepFailed(RunbookError):
    """A runbook check failed: which step, what it expected, what it saw, and the fix."""

    def __init__(self, step: str, *, expected: str, seen: str, fix: str) -> None:
        super().__init__(f"step {step} failed: expected {expected}; saw {seen}", fix=fix)
        self.step = step
        self.expected = expected
        self.seen = seen


class ReceiptInvalid(RunbookError):
    """A receipt or receipt chain failed offline verification."""
