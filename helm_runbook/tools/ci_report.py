"""What a CI run shows of the suite and the runbooks: a results table in the run's summary and one
annotation per failure, read from the JUnit files the suite and the runner write.

GitHub Actions renders ``$GITHUB_STEP_SUMMARY`` (Markdown) on the run's page and turns
``::error title=…::…`` lines on stdout into annotations. Both come from files a run wrote,
possibly with test names or messages that carry anything, so every value is escaped for the
place it lands (Markdown table cell, workflow-command data) and the input is bounded: file size,
cases read, lines kept. Without ``GITHUB_STEP_SUMMARY`` the summary is printed (a local preview).

    python -m helm_runbook.tools.ci_report build/test-report.xml build/runbook-report.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from helm_runbook.errors import InputError, report_error

MAX_FILE_BYTES = 32 * 1024 * 1024  # a suite of ~1,100 tests writes ~200 KB of JUnit
MAX_CASES = 100_000
MAX_FAILURES_LISTED = 50  # rows in the summary; the rest are counted
MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error annotations per step
MAX_TEXT = 500  # characters of a message kept in a row or an annotation


@dataclass
class Failure:
    """One failed test case or runbook: where, what was seen, and the fix when the run knows it."""

    source: str  # the report file it came from
    name: str
    message: str
    fix: str = ""


@dataclass
class Totals:
    """Counts of one report file."""

    source: str
    tests: int = 0
    failures: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failed: list[Failure] = field(default_factory=list)


def _read_bounded(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read report {path}: {exc.strerror}",
                         fix="give the path the test step (pytest --junitxml) or the runner wrote; a missing file is listed, not read") from exc  # fmt: skip
    if size > MAX_FILE_BYTES:
        raise InputError(f"report {path} is {size} bytes, over the {MAX_FILE_BYTES}-byte cap",
                         fix="pass the JUnit XML or the JSON report a run wrote, not another file")  # fmt: skip
    return path.read_bytes()


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def junit_totals(path: Path) -> Totals:
    """Counts and failures of a JUnit XML file (pytest's ``--junitxml`` or the runner's)."""
    try:
        root = ET.fromstring(_read_bounded(path))
    except ET.ParseError as exc:
        raise InputError(f"report {path} is not JUnit XML: {exc}",
                         fix="pass a JUnit XML file (pytest --junitxml writes one)") from exc  # fmt: skip
    totals = Totals(path.as_posix())
    for count, case in enumerate(root.iter("testcase")):
        if count >= MAX_CASES:
            raise InputError(f"report {path} has more than {MAX_CASES} test cases",
                             fix="pass the JUnit file of one test run")  # fmt: skip
        totals.tests += 1
        totals.seconds += _float(case.get("time"))
        if case.find("skipped") is not None:
            totals.skipped += 1
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            totals.failures += 1
            where = "::".join(p for p in (case.get("classname", ""), case.get("name", "")) if p)
            said = problem.get("message") or ((problem.text or "").strip().splitlines() or [""])[-1]
            totals.failed.append(Failure(totals.source, _clip(where), _clip(said)))
    return totals


def runbook_totals(path: Path) -> Totals:
    """Counts and failures of the runner's ``runbook-report.json``: a failure keeps its fix line."""
    try:
        report = json.loads(_read_bounded(path))
        entries = report["notebooks"]
        if not isinstance(entries, list):
            raise TypeError("notebooks is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"report {path} is not a runbook report: {exc}",
                         fix="pass the runner's JSON report as it wrote it") from exc  # fmt: skip
    totals = Totals(path.as_posix())
    for entry in entries[:MAX_CASES]:
        if not isinstance(entry, dict):
            continue
        steps = entry.get("steps") or []
        totals.tests += max(len(steps), 1)
        totals.seconds += _float(entry.get("duration_s"))
        totals.skipped += sum(1 for s in steps if isinstance(s, dict) and (s.get("values") or {}).get("skipped"))  # fmt: skip
        failure = entry.get("failure")
        if isinstance(failure, dict):
            totals.failures += 1
            name = f"{entry.get('notebook', '?')} cell {failure.get('cell', '?')}"
            seen = f"{failure.get('error', '')}: {failure.get('message', '')}".strip(": ")
            totals.failed.append(Failure(totals.source, _clip(name), _clip(seen), _clip(str(failure.get("fix") or ""))))  # fmt: skip
    return totals


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: no markup, no HTML, no column breaks."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*_[]|#!~":
        out = out.replace(char, "\\" + char)
    return out


def summary(reports: Sequence[Totals]) -> str:
    """The Markdown the run's page shows: one row per report, then the failures with their fix."""
    lines = ["## helm-runbook results", "", "| report | tests | failed | skipped | seconds |",
             "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in reports:
        lines.append(
            f"| {_cell(r.source)} | {r.tests} | {r.failures} | {r.skipped} | {r.seconds:.0f} |"
        )
    failed = [f for r in reports for f in r.failed]
    if failed:
        lines += ["", "| failed | seen | fix |", "| --- | --- | --- |"]
        lines += [f"| {_cell(f.name)} | {_cell(f.message)} | {_cell(f.fix)} |" for f in failed[:MAX_FAILURES_LISTED]]  # fmt: skip
        if len(failed) > MAX_FAILURES_LISTED:
            lines.append(
                f"\n…and {len(failed) - MAX_FAILURES_LISTED} more (the JUnit files have all)."
            )
    else:
        lines += ["", "Every test and runbook step passed."]
    return "\n".join(lines) + "\n"


def _command_data(text: str) -> str:
    # the workflow-command escapes (actions/toolkit's escapeData): no line can start a new command
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_lines(reports: Iterable[Totals]) -> list[str]:
    """``::error`` workflow commands, one per failure (the first ``MAX_ANNOTATIONS``)."""
    lines = []
    for f in [f for r in reports for f in r.failed][:MAX_ANNOTATIONS]:
        body = f"error: {f.message}" + (f"\nfix: {f.fix}" if f.fix else "")
        lines.append(f"::error title={_command_property(f.name)}::{_command_data(body)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helm_runbook.tools.ci_report",
                                     description="results table and annotations for a CI run")  # fmt: skip
    parser.add_argument("reports", nargs="+", type=Path,
                        help="JUnit XML files and/or runbook-report.json; a missing one is listed as such")  # fmt: skip
    opts = parser.parse_args(argv)
    totals: list[Totals] = []
    try:
        for path in opts.reports:
            if not path.exists():  # the step that writes it did not run (an earlier step failed)
                totals.append(Totals(f"{path.as_posix()} (not written)"))
                continue
            totals.append(runbook_totals(path) if path.suffix == ".json" else junit_totals(path))
    except InputError as exc:
        return report_error(exc)
    for line in annotation_lines(totals):
        print(line)
    text = summary(totals)
    target = os.environ.get("GITHUB_STEP_SUMMARY", "")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
