"""Result objects that render as a table in Jupyter (``_repr_html_``) and as text in a terminal."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Table:
    """A titled table with a PASS/FAIL headline; the common rendering of every step's result."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]] = field(default_factory=list)
    ok: bool = True
    summary: str = ""

    @property
    def status(self) -> str:
        return "PASS" if self.ok else "FAIL"

    def __str__(self) -> str:
        cells = [[str(c) for c in self.columns], *[[str(c) for c in row] for row in self.rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [f"{self.title}: {self.status}" + (f" ({self.summary})" if self.summary else "")]
        for n, row in enumerate(cells):
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#cf222e"
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        summary = f" — {html.escape(self.summary)}" if self.summary else ""
        return (
            f"<div><strong>{html.escape(self.title)}</strong>: "
            f'<span style="color:{colour};font-weight:bold">{self.status}</span>{summary}'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )


@dataclass
class StepReport:
    """What one runbook step did: a table for people, ``values`` for the recorded results."""

    step: str
    title: str
    columns: Sequence[str]
    rows: list[list[object]] = field(default_factory=list)
    summary: str = ""
    ok: bool = True
    seconds: float = 0.0
    values: dict[str, object] = field(default_factory=dict)
    command: str = ""  # the equivalent shell command, exactly as the step applied it (no secrets)

    def as_record(self) -> dict[str, object]:
        """What ``record`` writes into the executed notebook: the run report, the results page
        and the tests read this, never the printed table."""
        out: dict[str, object] = {
            "step": self.step,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "values": self.values,
        }
        if self.command:  # what the "Equivalent commands" blocks are checked against
            out["command"] = self.command
        return out

    def table(self) -> Table:
        summary = (
            f"{self.summary} ({self.seconds:.2f}s)" if self.summary else f"{self.seconds:.2f}s"
        )
        return Table(
            f"{self.step}: {self.title}", self.columns, self.rows, ok=self.ok, summary=summary
        )

    def __str__(self) -> str:
        text = str(self.table())
        return f"{text}\nEquivalent command:\n{self.command}" if self.command else text

    def _repr_html_(self) -> str:
        html_table = self.table()._repr_html_()
        if not self.command:
            return html_table
        return f"{html_table}<p>Equivalent command:</p><pre>{html.escape(self.command)}</pre>"


#: Set by the unattended runner (papermill) for its kernels: steps then print no live progress.
UNATTENDED_ENV = "HELM_RUNBOOK_UNATTENDED"


def unattended() -> bool:
    """True inside a kernel started by the unattended runner (``make runbook``, ``helm-runbook run``)."""
    return os.environ.get(UNATTENDED_ENV) == "1"


def progress(desc: str, unit: str) -> Any:
    """A live progress bar for a long step: a widget in JupyterLab, a line in a terminal, and
    nothing in an unattended run (papermill output and the published pages stay clean)."""
    from tqdm.auto import tqdm

    return tqdm(desc=desc, unit=unit, leave=False, disable=unattended())
