"""The runner's own rules: typed ``-p`` parameters, the resume hint, the kept executed copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook import runbook
from helm_runbook.cli import main
from helm_runbook.errors import InputError

INSTALL = runbook.NOTEBOOKS / "03-production-install.ipynb"


def test_parameters_from_the_command_line_get_their_declared_type() -> None:
    [typed] = runbook.typed_parameters(
        [INSTALL], {"upstream_port": "0", "target": "local"}
    ).values()
    # 0 is the int "pick a free port", not the text "0" (which would count as set).
    assert typed == {"upstream_port": 0, "target": "local"}
    assert not typed["upstream_port"]


@pytest.mark.parametrize(
    ("given", "named"),
    [({"upstream_port": "eighty"}, "upstream_port is declared int"),
     ({"upstream_prot": "0"}, "upstream_prot")],
)  # fmt: skip
def test_a_parameter_that_does_not_convert_or_exist_is_refused_before_anything_runs(
    given: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match=named) as caught:
        runbook.typed_parameters([INSTALL], given)
    assert caught.value.fix
    name, value = next(iter(given.items()))
    assert main(["run", "03", "-p", name, value]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_resume_hint_keeps_every_original_argument() -> None:
    hint = runbook.resume_command(["--target", "prod/ops", "--cell-timeout", "600"])
    assert hint == "make runbook RUNBOOK_ARGS='--resume --target prod/ops --cell-timeout 600'"
    assert runbook.resume_command(["--resume"]) == "make runbook RUNBOOK_ARGS=--resume"


@pytest.mark.notebooks
@pytest.mark.slow
def test_a_failed_run_never_replaces_the_passing_executed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runbook, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runbook, "WORKDIR", tmp_path / "wd")
    notebook = runbook.NOTEBOOKS / "02-secret-setup.ipynb"
    passing = runbook.executed_copy(notebook, passed=True)
    passing.parent.mkdir(parents=True)
    passing.write_text("the copy the site is built from")
    entry = runbook.execute(notebook, target="no-such-context", cell_timeout=60)
    assert entry["status"] == "failed"
    assert passing.read_text() == "the copy the site is built from"
    assert runbook.executed_copy(notebook, passed=False).exists()
    assert entry["executed"] == "failed/02-secret-setup.ipynb"
    assert sorted(p.name for p in (tmp_path / "runbooks").iterdir()) == [passing.name, "failed"]


def test_a_step_skipped_with_its_reason_is_a_skipped_junit_testcase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xml.etree.ElementTree as ET

    monkeypatch.setattr(runbook, "BUILD", tmp_path)
    monkeypatch.setattr(runbook, "REPORT", tmp_path / "runbook-report.json")
    reason = "needs the stand-in control plane (target=local)"
    steps = [{"step": "install", "ok": True, "seconds": 1.0, "cell": 3, "values": {}},
             {"step": "policy.wake", "ok": True, "seconds": 0.0, "cell": 4, "values": {"skipped": reason}}]  # fmt: skip
    entry = {
        "notebook": "07-x",
        "status": "passed",
        "duration_s": 1.0,
        "steps": steps,
        "failure": None,
    }
    runbook.write_reports([entry], {"target": "kube:emulated"})
    cases = ET.parse(tmp_path / "runbook-report.xml").getroot().iter("testcase")
    assert [(c.get("name"), [s.get("message") for s in c.iter("skipped")]) for c in cases] == [
        ("install (cell 3)", []),
        ("policy.wake (cell 4)", [reason]),
    ]
