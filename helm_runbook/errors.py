"""Errors an operator can act on.

Every error names what went wrong and carries a ``fix`` line, in the tone of the deployment
guide's troubleshooting table.

    RunbookError
    ├── ChartError            a chart failed to lint or render (carries Helm's message)
    │   ├── RenderError
    │   └── ValuesError
    ├── InputError            a file, key or value given to a command is unusable
    ├── SecretMaterialMissing key material a step needs is absent
    ├── TargetUnavailable     the local or kube target (or a runtime URL) cannot be reached
    ├── RuntimeAPIError       the runtime answered with a status the call cannot use
    ├── StepFailed            a runbook check saw something other than what it expected
    └── VerificationFailed    a signature, seal or chain did not verify
        └── ReceiptInvalid    a receipt or chain failed offline verification
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

#: How a fix line names the runbook that has to run first ("run runbook 03-production-install first").
_RUN_FIRST = re.compile(r"\brunbook (\d\d-[a-z0-9-]+)")


#: What runs once for each RunbookError a notebook cell shows: ``harness.record`` registers the
#: hook that records the failure in the cell's metadata. Errors sit below the harness (steps,
#: targets and tools raise them), so the harness registers itself instead of being imported here.
_when_shown: list[Callable[[RunbookError], None]] = []


def when_shown(hook: Callable[[RunbookError], None]) -> None:
    """Run ``hook`` once for each RunbookError a notebook cell shows (registered once)."""
    if hook not in _when_shown:
        _when_shown.append(hook)


class RunbookError(Exception):
    """Base of every error the runbook raises on purpose; ``fix`` says what to do next."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\nfix: {self.fix}" if self.fix else self.message

    @property
    def run_first(self) -> str:
        """The runbook (``03-production-install``) the fix says to run, else ``""``: then
        repeating the failed step cannot succeed until that runbook has run."""
        named = _RUN_FIRST.search(self.fix)
        return named.group(1) if named else ""

    def as_record(self) -> dict[str, str]:
        """The failure as data (the run report and the CLI read it; nobody parses the text)."""
        return {"error": type(self).__name__, "message": self.message, "fix": self.fix,
                "run_first": self.run_first}  # fmt: skip

    def _render_traceback_(self) -> list[str]:
        """How IPython shows this error in a notebook cell: the error and its fix, no traceback
        (what failed is the deployment, not the code), recorded in the cell's metadata."""
        if not getattr(self, "_recorded", False):  # IPython may render an error more than once
            self._recorded = True
            for hook in _when_shown:
                hook(self)
        return [
            f"{type(self).__name__}: {self.message}",
            *([f"fix: {self.fix}"] if self.fix else []),
        ]


class ChartError(RunbookError):
    """The chart did not lint or render; ``helm_message`` is Helm's own text."""

    def __init__(self, message: str, *, fix: str = "", helm_message: str = "") -> None:
        super().__init__(message, fix=fix)
        self.helm_message = helm_message


class RenderError(ChartError):
    """A render failed, usually a ``fail`` guard in ``_validate.tpl``."""


class ValuesError(ChartError):
    """Values do not meet ``values.schema.json``."""


class InputError(RunbookError):
    """A file, key or value given to a command cannot be used (missing, unreadable, malformed)."""


class SecretMaterialMissing(RunbookError):
    """Key material (signing seed, API key) that a step needs is absent."""


class TargetUnavailable(RunbookError):
    """The deployment target (local sandbox or kube context) cannot be reached."""


class RuntimeAPIError(RunbookError):
    """The runtime answered with a status the call cannot use; ``status`` and ``detail`` are
    what it said (``client.RuntimeClient`` raises it)."""

    def __init__(self, message: str, *, fix: str, status: int, detail: str) -> None:
        super().__init__(message, fix=fix)
        self.status = status
        self.detail = detail


class StepFailed(RunbookError):
    """A runbook check failed: which step, what it expected, what it saw, and the fix.

    ``kind`` is the error class the step itself raised when the runner restates a failed cell
    (``TargetUnavailable``: the exit status is that of a target that could not be reached)."""

    def __init__(self, step: str, *, expected: str, seen: str, fix: str, kind: str = "") -> None:
        super().__init__(f"step {step} failed: expected {expected}; saw {seen}", fix=fix)
        self.step = step
        self.expected = expected
        self.seen = seen
        self.kind = kind

    def as_record(self) -> dict[str, str]:
        return {
            **super().as_record(),
            "step": self.step,
            "expected": self.expected,
            "seen": self.seen,
        }


class VerificationFailed(RunbookError):
    """Something signed (a receipt, an evidence pack, a policy bundle) did not verify."""


class ReceiptInvalid(VerificationFailed):
    """A receipt or receipt chain failed offline verification."""


_EXIT_BY_ERROR: tuple[tuple[type[RunbookError], int], ...] = (
    (TargetUnavailable, 3),
    (RuntimeAPIError, 4),
    (StepFailed, 5),
    (VerificationFailed, 5),
    (ChartError, 5),
)


def exit_code(error: RunbookError) -> int:
    """The exit status for ``error`` that ``helm-runbook --help`` documents (2 for input and
    other expected failures); a restated step failure has the status of what the step raised."""
    kind = getattr(error, "kind", "")
    if kind == "bug":  # an exception no step raises on purpose, restated with its traceback
        return 1
    if kind:
        named = {k.__name__: code for k, code in _EXIT_BY_ERROR if k is not StepFailed}
        named |= {k.__name__: 2 for k in (InputError, SecretMaterialMissing)}
        return named.get(kind, 5)
    return next((code for kind, code in _EXIT_BY_ERROR if isinstance(error, kind)), 2)


def report_error(error: RunbookError) -> int:
    """Print an expected failure as one ``error:`` line and its ``fix:`` (the CLI's and the
    runner's error boundary); returns its exit status."""
    print(f"error: {error.message}", file=sys.stderr)
    if error.fix:
        print(f"fix: {error.fix}", file=sys.stderr)
    return exit_code(error)
