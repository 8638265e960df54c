"""Recorded results: each step's outcome written into the executed notebook's output metadata.

Tests and the run report read these values, never printed text (recommenders' ``store_metadata``).
Outside a Jupyter kernel ``record`` does nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def record(report: Any) -> None:
    """Attach ``report``'s step, status, duration, values and equivalent shell command (secrets
    masked; what the "Equivalent commands" blocks are checked against) to the current cell."""
    payload = {
        "step": report.step,
        "ok": report.ok,
        "seconds": round(report.seconds, 3),
        "values": report.values,
    }
    if getattr(report, "command", ""):
        payload["command"] = report.command
    _publish(payload)


def record_failure(error: Any) -> None:
    """Attach a failed step (``error.as_record()``: step, expected, seen, fix) to the current cell."""
    failure = error.as_record()
    _publish({"step": failure.get("step", "error"), "ok": False, "seconds": 0.0, "values": {},
              "failure": failure})  # fmt: skip


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
