"""The deployment guide's shell commands as data (``docs/guide-commands.yaml``: verbatim from the
guide, with the runbook step that runs each) and the ``--set`` flags of a command: what runbook 01
renders as written and what the site's guide-coverage page checks the runs against."""

from __future__ import annotations

import itertools
import json
import shlex
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
    also_step: str = ""  # a second step that runs it (the guide's skeletons, rendered as written)
    added_because: Mapping[str, str] = field(default_factory=dict)  # an added --set key → why

    def executed_by(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (a passed step of the run report) ran this command."""
        if record.get("step") not in (self.step, self.also_step or self.step) or not record.get(
            "ok"
        ):
            return False
        values = record.get("values") or {}
        command = str(values.get("command", ""))
        if any(flag not in command for flag in self.flags):
            return False
        return not self.contains or self.contains in json.dumps(values, sort_keys=True)

    def added_flags(self, record: Mapping[str, Any]) -> list[str]:
        """The ``--set`` keys the recorded command passed that the guide's command does not."""
        written = {key for key, _ in set_flags(self.command)}
        ran = str((record.get("values") or {}).get("command", ""))
        return sorted({key for key, _ in set_flags(ran)} - written)


def guide_commands(path: Path = GUIDE_COMMANDS) -> list[GuideCommand]:
    """The guide's commands as the repository lists them."""
    entries = yaml.safe_load(path.read_text()) or []
    return [GuideCommand(e["section"], e["command"], e["step"], tuple(e.get("flags", ())), e.get("contains", ""),
                         e.get("also_step", ""), dict(e.get("added_because") or {}))
            for e in entries]  # fmt: skip


_SET_OPTIONS = ("--set", "--set-string", "--set-json", "--set-literal", "--set-file")


def set_flags(command: str) -> list[tuple[str, str]]:
    """(key, value) of every ``--set``-like flag of a shell command, in order."""
    try:
        words = shlex.split(command.replace("\\\n", " "))
    except ValueError:
        words = command.split()
    out = []
    for option, word in itertools.pairwise(words):
        if option in _SET_OPTIONS and "=" in word:
            key, value = word.split("=", 1)
            out.append((key, value))
    return out


__all__ = ["GUIDE_COMMANDS", "GuideCommand", "guide_commands", "set_flags"]
