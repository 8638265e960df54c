"""Bad usage as every other failure reads: one ``error:`` line and one ``fix:`` line (exit 2),
"did you mean" for a mistyped command, and help as plain text. The parser of ``helm-runbook`` and
of ``make runbook``'s runner."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's failure shape: bad usage is one ``error:`` line and one ``fix:``
    line (exit 2), a mistyped subcommand gets "did you mean", and ``--help`` is plain text
    (docstrings' reStructuredText quotes dropped)."""

    def error(self, message: str) -> NoReturn:
        fix = f"see {self.prog} --help"
        mistyped = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if mistyped:
            word, choices = mistyped.group(1), re.findall(r"'([^']*)'", mistyped.group(2))
            close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
            message = f"{self.prog}: no command {word!r}"
            fix = (f"did you mean: {self.prog} {close[0]}? " if close else "") + (
                f"the commands are {', '.join(choices)}"
            )
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [w.split("=")[0] for w in unknown.group(1).split() if w.startswith("--")]
            close = [
                m for f in flags for m in difflib.get_close_matches(f, self._every_flag(), n=1)
            ]
            if close:
                fix = f"did you mean {close[0]}? {fix}"
        print(f"error: {message}", file=sys.stderr)
        print(f"fix: {fix}", file=sys.stderr)
        raise SystemExit(2)

    def _every_flag(self) -> list[str]:
        """The long options of this parser and of every subcommand under it."""
        flags = [o for o in self._option_string_actions if o.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += sub._every_flag() if isinstance(sub, Parser) else []
        return sorted(set(flags))

    def format_help(self) -> str:
        return re.sub(r"``([^`]*)``", r"\1", super().format_help())
