"""Which of the deployment guide's shell commands the runbooks executed in the last run.

The commands are data (``docs/guide-commands.yaml``, verbatim from the guide, with the step that
executes each); the evidence is the run report's recorded steps. The site's guide-coverage page
and the runbook tests both read ``guide_coverage``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GUIDE_COMMANDS = Path(__file__).resolve().parents[2] / "docs" / "guide-commands.yaml"


@dataclass(frozen=True)
class GuideCommand:
    section: str
    command: str
    step: str
    flags: tuple[str, ...] = ()
    contains: str = ""

    def executed_by(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (a passed step of the run report) ran this command."""
        if record.get("step") != self.step or not record.get("ok"):
            return False
        values = record.get("values") or {}
        command = str(values.get("command", ""))
        if any(flag not in command for flag in self.flags):
            return False
        return not self.contains or self.contains in json.dumps(values, sort_keys=True)


@dataclass
class Coverage:
    command: GuideCommand
    executed_in: list[tuple[str, int]] = field(default_factory=list)  # (notebook, cell)

    @property
    def covered(self) -> bool:
        return bool(self.executed_in)


def guide_commands(path: Path = GUIDE_COMMANDS) -> list[GuideCommand]:
    """The guide's commands as the repository lists them."""
    entries = yaml.safe_load(path.read_text()) or []
    return [GuideCommand(e["section"], e["command"], e["step"], tuple(e.get("flags", ())), e.get("contains", ""))
            for e in entries]  # fmt: skip


def guide_coverage(report: Mapping[str, Any], path: Path = GUIDE_COMMANDS) -> list[Coverage]:
    """Each guide command with the notebooks and cells whose recorded step executed it."""
    out = [Coverage(command) for command in guide_commands(path)]
    for entry in report.get("notebooks", []):
        for record in entry.get("steps", []):
            for item in out:
                if item.command.executed_by(record):
                    item.executed_in.append((entry["notebook"], int(record.get("cell", -1))))
    return out


__all__ = ["Coverage", "GuideCommand", "guide_commands", "guide_coverage"]
