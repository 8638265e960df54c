"""The CI run's summary and annotations: counts right, every value inert where it lands, input bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_runbook.tools import ci_report

HOSTILE = "x | y <img src=x onerror=alert(1)> `code` [link](http://e.example) \n::add-mask::z %0A"


def _junit(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "test-report.xml"
    path.write_text(
        f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{body}</testsuite></testsuites>'
    )
    return path


def _runbook_report(tmp_path: Path, message: str = "", fix: str = "") -> Path:
    failed = {"cell": 7, "error": "StepFailed", "message": message, "fix": fix}
    entries = [
        {"notebook": "01-chart-lint", "status": "passed", "duration_s": 1.5, "failure": None,
         "steps": [{"step": "chart.lint", "cell": 3}, {"step": "cp", "cell": 4, "values": {"skipped": "why"}}]},
        {"notebook": "04-smoke-checks", "status": "failed", "duration_s": 2.0, "failure": failed if message else None,
         "steps": [{"step": "smoke.health", "cell": 5}]},
    ]  # fmt: skip
    path = tmp_path / "runbook-report.json"
    path.write_text(json.dumps({"run": {"target": "local"}, "notebooks": entries}))
    return path


def test_junit_counts_and_failures(tmp_path: Path) -> None:
    path = _junit(tmp_path, '<testcase classname="tests.a" name="ok" time="0.5"/>'
                            '<testcase classname="tests.a" name="skip" time="0.1"><skipped message="no chromium"/></testcase>'
                            '<testcase classname="tests.b" name="bad" time="1"><failure message="assert 1 == 2">trace</failure></testcase>'
                            '<testcase classname="tests.c" name="err"><error>line one\nImportError: x</error></testcase>')  # fmt: skip
    totals = ci_report.junit_totals(path)
    assert (totals.tests, totals.failures, totals.skipped, round(totals.seconds, 1)) == (
        4,
        2,
        1,
        1.6,
    )
    assert [(f.name, f.message) for f in totals.failed] == [("tests.b::bad", "assert 1 == 2"),
                                                            ("tests.c::err", "ImportError: x")]  # fmt: skip


def test_runbook_failures_keep_their_fix(tmp_path: Path) -> None:
    totals = ci_report.runbook_totals(
        _runbook_report(tmp_path, "no 200 on :8081/health", "port-forward 8081")
    )
    assert (totals.tests, totals.failures, totals.skipped) == (3, 1, 1)
    [failure] = totals.failed
    assert failure.name == "04-smoke-checks cell 7"
    assert (
        failure.message == "StepFailed: no 200 on :8081/health"
        and failure.fix == "port-forward 8081"
    )
    [annotation] = ci_report.annotation_lines([totals])
    assert annotation == (
        "::error title=04-smoke-checks cell 7::"
        "error: StepFailed: no 200 on :8081/health%0Afix: port-forward 8081"
    )


def test_values_are_inert_in_the_summary_and_the_annotations(tmp_path: Path) -> None:
    totals = ci_report.runbook_totals(_runbook_report(tmp_path, HOSTILE, HOSTILE))
    text = ci_report.summary([totals])
    row = text.splitlines()[-1]
    assert "<img" not in text and "&lt;img" in row
    assert row.count("|") - row.count("\\|") == 4  # three cells: a value never opens a column
    assert "\\`code\\`" in row and "\\[link\\]" in row
    [annotation] = ci_report.annotation_lines([totals])
    assert (
        "\n" not in annotation and "::add-mask::" in annotation
    )  # data, on the annotation's one line
    assert "%250A" in annotation  # a literal %0A stays text, never becomes a newline


def test_summary_goes_to_the_step_summary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(out))
    report = _runbook_report(tmp_path)
    assert ci_report.main([str(report), str(tmp_path / "test-report.xml")]) == 0
    text = out.read_text()
    assert (
        "| " + str(tmp_path / "test-report.xml").replace("_", "\\_") + " (not written) | 0 |"
        in text
    )
    assert "Every test and runbook step passed." in text
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("content", "said"), [
    ("<testsuites><testcase", "is not JUnit XML"),
    ('{"notebooks": 3}', "is not a runbook report"),
    ("[1]", "is not a runbook report"),
])  # fmt: skip
def test_malformed_reports_are_one_error_and_a_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  content: str, said: str) -> None:  # fmt: skip
    path = tmp_path / ("report.json" if content[0] in "{[" else "report.xml")
    path.write_text(content)
    assert ci_report.main([str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert (
        len(err) == 2
        and err[0].startswith("error: ")
        and said in err[0]
        and err[1].startswith("fix: ")
    )


def test_input_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ci_report, "MAX_FILE_BYTES", 1000)
    path = _junit(tmp_path, '<testcase name="t"/>' * 100)
    with pytest.raises(ci_report.InputError, match="over the 1000-byte cap"):
        ci_report.junit_totals(path)
    monkeypatch.setattr(ci_report, "MAX_FILE_BYTES", 10**6)
    monkeypatch.setattr(ci_report, "MAX_CASES", 10)
    with pytest.raises(ci_report.InputError, match="more than 10 test cases"):
        ci_report.junit_totals(path)
    failing = _junit(tmp_path, '<testcase name="t"><failure message="m"/></testcase>' * 9)
    totals = ci_report.junit_totals(failing)
    assert len(ci_report.annotation_lines([totals, totals])) == ci_report.MAX_ANNOTATIONS
