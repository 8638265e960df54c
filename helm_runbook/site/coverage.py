"""Which shell commands the runbooks executed: the deployment guide's, and those each notebook
shows in its "Equivalent commands" block.

The guide's commands are data (``docs/guide-commands.yaml``, verbatim from the guide, with the step
that executes each); the evidence is the run report's recorded steps. The site's guide-coverage
page and the runbook tests both read ``guide_coverage``. A notebook's block is checked against the
equivalent commands its own passed steps recorded (``StepReport.command``): ``unexecuted_equivalents``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from helm_runbook.chart.guide import GUIDE_COMMANDS, GuideCommand, guide_commands, set_flags
from helm_runbook.harness.record import read_records


@dataclass
class Coverage:
    command: GuideCommand
    executed_in: list[tuple[str, int]] = field(default_factory=list)  # (notebook, cell)
    added: list[list[str]] = field(default_factory=list)  # per execution: the --set keys added

    @property
    def covered(self) -> bool:
        return bool(self.executed_in)

    @property
    def as_written(self) -> bool:
        """Some execution ran the guide's command with no flag added."""
        return any(not keys for keys in self.added)

    def unexplained(self) -> list[str]:
        """Added flags ``docs/guide-commands.yaml`` gives no reason for."""
        return sorted({k for keys in self.added for k in keys} - set(self.command.added_because))

    def how(self) -> str:
        """What the coverage page says: run as written, or with which added flags and why."""
        if not self.covered:
            return "not executed by any runbook"
        parts = []
        for (notebook, cell), keys in zip(self.executed_in, self.added, strict=True):
            where = f"{notebook} cell {cell}"
            if not keys:
                parts.append(f"run as written ({where})")
            else:
                reasons = "; ".join(f"`{k}`, because {self.command.added_because.get(k, 'no reason recorded')}"
                                    for k in keys)  # fmt: skip
                parts.append(f"run with added flags ({where}): {reasons}")
        return "; ".join(dict.fromkeys(parts))


def guide_coverage(report: Mapping[str, Any], path: Path = GUIDE_COMMANDS) -> list[Coverage]:
    """Each guide command with the notebooks and cells whose recorded step executed it."""
    out = [Coverage(command) for command in guide_commands(path)]
    for entry in report.get("notebooks", []):
        for record in entry.get("steps", []):
            for item in out:
                if item.command.executed_by(record):
                    item.executed_in.append((entry["notebook"], int(record.get("cell", -1))))
                    item.added.append(item.command.added_flags(record))
    return out


_BLOCK = re.compile(r"Equivalent commands:\s*\n```(?:bash|sh)\n(.*?)```", re.S)
_PLACEHOLDER = re.compile(r"<[^<>\n]*>")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_PORTS = re.compile(r"^\d+:(\d+)$")


def shell_commands(text: str) -> list[str]:
    """The logical commands of a shell snippet: continuation lines joined, blanks and comments dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def command_words(command: str) -> list[str]:
    """The words a shown command must share with an executed one, in order.

    Comments, leading ``VAR=...`` assignments, placeholders (``<...>``, ``$VAR``: cut where they
    start) and everything from an ellipsis on ("the step prints the rest") are left out; a URL
    counts by its path, a port-forward ``LOCAL:REMOTE`` by its remote port.
    """
    try:
        words = shlex.split(_PLACEHOLDER.sub("<>", command), comments=True)
    except ValueError:  # unbalanced quotes: compare the raw words
        words = command.split()
    out: list[str] = []
    for word in words:
        if not out and _ENV.match(word):
            continue
        if "..." in word or "…" in word:
            break
        word = word.split("<>", 1)[0].split("$", 1)[0]
        if word.startswith(("http://", "https://")):
            word = urlsplit(word).path or "/"
        if ports := _PORTS.match(word):
            word = f":{ports.group(1)}"
        if word:
            out.append(word)
    return out


def _shows(shown: list[str], executed: list[str]) -> bool:
    """Whether ``executed`` contains the words of ``shown`` in order (a shown command may leave out
    options the step also passed, never add one)."""
    rest = iter(executed)
    return bool(shown) and shown[0] == executed[0] and all(word in rest for word in shown)


def equivalent_commands(notebook: Path) -> list[tuple[int, str]]:
    """(cell index, command) for every command of the notebook's "Equivalent commands" blocks."""
    doc = json.loads(notebook.read_text())
    out: list[tuple[int, str]] = []
    for index, cell in enumerate(doc.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            out += [(index, c) for block in _BLOCK.findall(text) for c in shell_commands(block)]
    return out


def unexecuted_equivalents(notebook: Path) -> list[str]:
    """The block commands of an executed notebook that no passed (not skipped) step of it ran."""
    executed = [command_words(c) for r in read_records(notebook)
                if r.get("ok") and not (r.get("values") or {}).get("skipped")
                for c in shell_commands(str(r.get("command", "")))]  # fmt: skip
    return [f"cell {cell}: {command}" for cell, command in equivalent_commands(notebook)
            if not any(_shows(command_words(command), words) for words in executed if words)]  # fmt: skip


__all__ = [
    "Coverage",
    "GuideCommand",
    "command_words",
    "equivalent_commands",
    "guide_commands",
    "guide_coverage",
    "set_flags",
    "shell_commands",
    "unexecuted_equivalents",
]
