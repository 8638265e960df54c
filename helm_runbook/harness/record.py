"""Recorded results: each step's outcome written into the executed notebook's output metadata.

Tests and the run report read these values, never printed text (recommenders' ``store_metadata``).
Outside a Jupyter kernel ``record`` does nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from helm_runbook.errors import when_shown


class Recordable(Protocol):
    """A step's result (``results.StepReport``), named here without importing it."""

    def as_record(self) -> dict[str, object]: ...


KEY = "helm_runbook"


def _publish(payload: dict[str, Any]) -> None:
    """Attach ``payload`` to the current cell's output metadata (inside a kernel only)."""
    try:
        from IPython import get_ipython
        from IPython.display import publish_display_data
    except ImportError:  # pragma: no cover - IPython ships with the notebooks extra
        return
    if get_ipython() is None:
        return
    metadata = {KEY: json.loads(json.dumps(payload, default=str))}
    publish_display_data({"text/plain": ""}, metadata=metadata)  # type: ignore[no-untyped-call]


def record(report: Recordable) -> None:
    """Attach ``report``'s step, status, duration and values (``StepReport.as_record``) to the
    current cell's output."""
    _publish(report.as_record())


def record_failure(error: Any) -> None:
    """Attach a failed step (``error.as_record()``: step, expected, seen, fix) to the current cell."""
    failure = error.as_record()
    _publish({"step": failure.get("step", "error"), "ok": False, "seconds": 0.0, "values": {},
              "failure": failure})  # fmt: skip


when_shown(record_failure)  # errors.RunbookError._render_traceback_ calls it in a notebook cell


def read_records(notebook: Path) -> list[dict[str, Any]]:
    """Every recorded step of an executed notebook, in order, with the cell index it came from."""
    doc = json.loads(notebook.read_text())
    out = []
    for index, cell in enumerate(doc.get("cells", [])):
        for output in cell.get("outputs", []):
            payload = output.get("metadata", {}).get(KEY)
            if payload:
                out.append({**payload, "cell": index})
    return out
