"""Result objects that render as a table in Jupyter (``_repr_html_``) and as text in a terminal."""

from __future__ import annotations

import html
import os
import re
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
    expected: bool = (
        False  # a failure the runbook caused on purpose (a fault injected, then detected)
    )

    @property
    def status(self) -> str:
        if not self.ok and self.expected:
            return "FAULT INJECTED → DETECTED"
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
        # green passed, red failed, blue for a fault the runbook injected and detected (not a broken
        # run): the site's colour for its light or dark scheme (docs/stylesheets/layout.css), the
        # light one where that stylesheet is absent (JupyterLab)
        kind = "ok" if self.ok else "expected" if self.expected else "failed"
        colour = f"var(--helm-{kind}-color,{STATUS_COLOURS[kind]})"
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{cell_html(c)}</td>" for c in row) + "</tr>" for row in self.rows
        )
        summary = f" — {html.escape(self.summary)}" if self.summary else ""
        return (
            f"<div><strong>{html.escape(self.title)}</strong>: "
            f'<span style="color:{colour};font-weight:bold">{self.status}</span>{summary}'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )


STATUS_COLOURS = {"ok": "#1a7f37", "expected": "#0550ae", "failed": "#cf222e"}  # 4.5:1 on white
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def cell_html(value: object) -> str:
    """A table cell's text, escaped, with its `code spans` as code (a value path such as
    `helm.signing.existingSecret` stays whole: the site never breaks inside code in a table)."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(str(value)))


def shortened(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut between words with an ellipsis (never
    mid-word: "…fail closed w")."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


# Run-specific noise in an equivalent command: the stand-ins a local run starts listen on ports
# chosen at random. The command shows what the value is, as an operator would write it.
_STAND_INS = (
    (re.compile(r"(helm\.proxy\.upstream=)https?://127\.0\.0\.1:\d+\S*"), r"\1<stand-in upstream>"),
    (re.compile(r"(helm\.policy\.source\.controlplane\.url=)https?://127\.0\.0\.1:\d+\S*"),
     r"\1<stand-in control plane>"),
    (re.compile(r"\b127\.0\.0\.1:\d{4,5}\b"), "127.0.0.1:<port>"),
)  # fmt: skip


def shown_command(command: str) -> str:
    """``command`` as the page shows it: stand-ins' URLs and local ports by what they are, not
    this run's random port (the recorded command keeps them: the coverage checks read it)."""
    for pattern, replacement in _STAND_INS:
        command = pattern.sub(replacement, command)
    return command


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
            f"{self.step}: {self.title}", self.columns, self.rows, ok=self.ok, summary=summary,
            expected=self.expected_failure,
        )  # fmt: skip

    @property
    def expected_failure(self) -> bool:
        """Whether a failed step is one the runbook caused on purpose (Diagnosis.require)."""
        return False

    def __str__(self) -> str:
        text = str(self.table())
        return (
            f"{text}\nEquivalent command:\n{shown_command(self.command)}" if self.command else text
        )

    def _repr_html_(self) -> str:
        html_table = self.table()._repr_html_()
        if not self.command:
            return html_table
        return f"{html_table}<p>Equivalent command:</p><pre>{html.escape(shown_command(self.command))}</pre>"


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
