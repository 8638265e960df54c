"""The runner's own rules: typed ``-p`` parameters, the resume hint, the kept executed copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_runbook import runner
from helm_runbook.cli import build_parser, main
from helm_runbook.errors import InputError

INSTALL = runner.NOTEBOOKS / "03-production-install.ipynb"


def test_parameters_from_the_command_line_get_their_declared_type() -> None:
    [typed] = runner.typed_parameters([INSTALL], {"upstream_port": "0", "target": "local"}).values()
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
        runner.typed_parameters([INSTALL], given)
    assert caught.value.fix
    name, value = next(iter(given.items()))
    assert main(["run", "03", "-p", name, value]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_resume_hint_keeps_every_original_argument() -> None:
    request = runner.RunRequest(target="prod/ops", cell_timeout=600, resume=True)
    hint = runner.resume_command(request)
    assert hint == "make runbook RUNBOOK_ARGS='--resume --target prod/ops --cell-timeout 600'"
    assert runner.resume_command(runner.RunRequest()) == "make runbook RUNBOOK_ARGS=--resume"
    chosen = runner.RunRequest(("03",), parameters=(("upstream_port", "0"),), docs=False)
    assert runner.resume_command(chosen, via=runner.CLI_RUN) == (
        "helm-runbook run --resume 03 -p upstream_port 0 --no-docs"
    )


ARGUMENTS = [
    [],
    ["03", "04", "--target", "prod/ops", "-p", "upstream_port", "0", "--cell-timeout", "60"],
    ["--resume", "--no-docs"],
    ["05", "--resume"],
]


@pytest.mark.parametrize("args", ARGUMENTS)
def test_the_cli_and_make_runbook_plan_the_same_run(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build_in(tmp_path, monkeypatch)
    from_cli = runner.request_from(build_parser().parse_args(["run", *args]))
    from_make = runner.request_from(runner.build_parser().parse_args(args))
    assert from_cli == from_make
    assert runner.plan_run(from_cli) == runner.plan_run(from_make)


def _build_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"BUILD": tmp_path, "EXECUTED": tmp_path / "runbooks", "WORKDIR": tmp_path / "wd",
                        "REPORT": tmp_path / "runbook-report.json"}.items():  # fmt: skip
        monkeypatch.setattr(runner, name, value)


def _previous_run(passed: list[str], failed: str) -> None:
    """A report of an earlier run: ``passed`` (with their executed copies), then ``failed``."""
    runner.EXECUTED.mkdir(parents=True)
    entries = []
    for stem in passed:
        (runner.EXECUTED / f"{stem}.ipynb").write_text("{}")
        entries.append(
            {"notebook": stem, "status": "passed", "steps": [], "failure": None, "duration_s": 1.0}
        )
    entries.append({"notebook": failed, "status": "failed", "steps": [], "duration_s": 1.0,
                    "failure": {"cell": 3, "error": "StepFailed", "message": "m", "fix": "f"}})  # fmt: skip
    runner.REPORT.write_text(json.dumps({"run": {}, "notebooks": entries}))


def test_resume_skips_only_the_leading_runbooks_that_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build_in(tmp_path, monkeypatch)
    stems = [nb.stem for nb in runner.notebooks()]
    _previous_run(stems[:2], stems[2])
    plan = runner.plan_run(runner.RunRequest(resume=True))
    assert [p.notebook.stem for p in plan.runbooks if p.skip] == stems[:2]
    assert (plan.whole, plan.fresh, plan.docs) == (True, False, True)
    fresh = runner.plan_run(runner.RunRequest())
    assert not any(p.skip for p in fresh.runbooks) and fresh.fresh
    # a chosen runbook works on the state the others left: no reset, no site
    chosen = runner.plan_run(runner.RunRequest(("04",)))
    assert [p.notebook.stem for p in chosen.runbooks] == [s for s in stems if s.startswith("04")]
    assert (chosen.whole, chosen.fresh, chosen.docs) == (False, False, False)
    with pytest.raises(InputError, match="no runbook matches 77"):
        runner.plan_run(runner.RunRequest(("77",)))


def test_the_cli_and_make_runbook_print_the_same_summary_and_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loop itself, with notebook execution replaced by a recorder (the real execution has
    its own test below): both entry points run the same notebooks with the same parameters,
    print the same lines, write the same report and fail with the same status."""
    _build_in(tmp_path, monkeypatch)
    calls: list[tuple[str, dict[str, object]]] = []

    def execute(
        notebook: Path, *, target: str, cell_timeout: int, extra: dict[str, object]
    ) -> dict[str, object]:
        calls.append((notebook.stem, {"target": target, "timeout": cell_timeout, **extra}))
        failed = notebook.stem.startswith("04")
        failure = {
            "cell": 7,
            "error": "StepFailed",
            "message": "smoke: 503",
            "fix": "start the pod",
            "step": "smoke",
        }
        return {"notebook": notebook.stem, "status": "failed" if failed else "passed", "duration_s": 0.5,
                "steps": [], "failure": failure if failed else None, "executed": f"{notebook.name}"}  # fmt: skip

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "reach_target", lambda target: None)  # tested on its own
    monkeypatch.setattr(runner, "run_metadata", lambda target: {"target": target})
    outputs, capsys_err = [], []
    for entry, args in ((main, ["run"]), (runner.main, [])):
        calls.clear()
        runner.REPORT.unlink(missing_ok=True)
        code = entry([*args, "03", "04", "-p", "upstream_port", "0", "--target", "ctx/ns"])
        out, err = capsys.readouterr()
        capsys_err.append(err)
        report = json.loads(runner.REPORT.read_text())["notebooks"]
        outputs.append((code, out, [line for line in err.splitlines() if not line.startswith("resume with: ")],
                        list(calls), [e["notebook"] for e in report]))  # fmt: skip
    assert outputs[0][1:4] == outputs[1][1:4] and outputs[0][0] == outputs[1][0] == 5
    code, out, err, calls_made, reported = outputs[0]
    assert (
        [name for name, _ in calls_made] == reported == ["03-production-install", "04-smoke-checks"]
    )
    assert calls_made[0][1] == {"target": "ctx/ns", "timeout": 300, "upstream_port": 0}
    assert out.splitlines()[1].startswith("  FAIL 04-smoke-checks")
    assert "fix: start the pod" in err and "04-smoke-checks cell 7 (smoke)" in "\n".join(err)
    assert "resume with: helm-runbook run --resume 03 04 --target ctx/ns" in capsys_err[0]
    assert "resume with: make runbook RUNBOOK_ARGS='--resume 03 04" in capsys_err[1]


@pytest.mark.notebooks
@pytest.mark.slow
def test_a_failed_run_never_replaces_the_passing_executed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "wd")
    notebook = runner.NOTEBOOKS / "02-secret-setup.ipynb"
    passing = runner.executed_copy(notebook, passed=True)
    passing.parent.mkdir(parents=True)
    passing.write_text("the copy the site is built from")
    entry = runner.execute(notebook, target="no-such-context", cell_timeout=60)
    assert entry["status"] == "failed"
    assert passing.read_text() == "the copy the site is built from"
    assert runner.executed_copy(notebook, passed=False).exists()
    assert entry["executed"] == "failed/02-secret-setup.ipynb"
    assert sorted(p.name for p in (tmp_path / "runbooks").iterdir()) == [passing.name, "failed"]


def test_a_step_skipped_with_its_reason_is_a_skipped_junit_testcase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xml.etree.ElementTree as ET

    monkeypatch.setattr(runner, "BUILD", tmp_path)
    monkeypatch.setattr(runner, "REPORT", tmp_path / "runbook-report.json")
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
    runner.write_reports([entry], {"target": "kube:emulated"})
    cases = ET.parse(tmp_path / "runbook-report.xml").getroot().iter("testcase")
    assert [(c.get("name"), [s.get("message") for s in c.iter("skipped")]) for c in cases] == [
        ("install (cell 3)", []),
        ("policy.wake (cell 4)", [reason]),
    ]


def test_a_whole_run_computes_the_reference_pages_while_its_last_runbook_executes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site's reference pages depend on no run: they start with the last runbook (in a
    thread) and the site build gets them, instead of rendering them after every runbook."""
    from concurrent.futures import Future

    _build_in(tmp_path, monkeypatch)
    events: list[str] = []
    ahead: Future[dict[str, str]] = Future()
    ahead.set_result({"reference/values.md": "# values"})

    def execute(notebook: Path, **_: object) -> dict[str, object]:
        events.append(notebook.stem[:2])
        return {"notebook": notebook.stem, "status": "passed", "duration_s": 0.1, "steps": [],
                "failure": None, "executed": notebook.name}  # fmt: skip

    def reference_ahead() -> Future[dict[str, str]]:
        events.append("reference")
        return ahead

    built: list[object] = []
    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "reach_target", lambda target: None)  # tested on its own
    monkeypatch.setattr(runner, "run_metadata", lambda target: {"target": target})
    monkeypatch.setattr(runner, "reference_ahead", reference_ahead)
    monkeypatch.setattr(runner, "build_docs", lambda reference=None: built.append(reference) or 0.0)
    monkeypatch.setattr(runner, "stop_local_target", lambda: 0)
    runner.run(runner.RunRequest())
    last = runner.notebooks()[-1].stem[:2]
    assert events[-2:] == ["reference", last] and events.count("reference") == 1
    assert built == [ahead]
    events.clear()
    runner.run(runner.RunRequest(docs=False))
    assert "reference" not in events


def test_reference_pages_computed_ahead_are_the_pages_written(tmp_path: Path) -> None:
    from helm_runbook.site.pages import write_generated_pages

    ahead = {"reference/values.md": "# values, computed ahead", "topology.svg": "<svg/>"}
    write_generated_pages(tmp_path, {"run": {}, "notebooks": []}, ahead)
    assert (tmp_path / "reference" / "values.md").read_text() == ahead["reference/values.md"]
    assert (tmp_path / "topology.svg").read_text() == "<svg/>"
    assert (tmp_path / "results.md").exists() and (tmp_path / "guide-coverage.md").exists()


def _fail_with(monkeypatch: pytest.MonkeyPatch, failure: dict[str, object]) -> None:
    def execute(notebook: Path, **_: object) -> dict[str, object]:
        return {"notebook": notebook.stem, "status": "failed", "duration_s": 0.5, "steps": [],
                "failure": failure, "executed": f"failed/{notebook.name}"}  # fmt: skip

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "run_metadata", lambda target: {"target": target})


def test_a_failure_that_names_the_runbook_to_run_first_gets_no_resume_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resuming would fail the same way until that runbook ran: the fix names the command, and
    the exit status is that of what the step raised (3: the release is not there)."""
    _build_in(tmp_path, monkeypatch)
    _fail_with(monkeypatch, {"cell": 7, "error": "TargetUnavailable", "message": "no pod is running",
                             "fix": "run runbook 03-production-install first"})  # fmt: skip
    assert main(["run", "04"]) == 3
    err = capsys.readouterr().err
    assert "resume with:" not in err
    assert "fix: run runbook 03-production-install first: helm-runbook run 03 04" in err
    assert runner.main(["4", "--target", "local"]) == 3
    assert "make runbook RUNBOOK_ARGS='03 04 --target local'" in capsys.readouterr().err


def test_an_exception_no_step_raises_on_purpose_is_a_bug_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _build_in(tmp_path, monkeypatch)
    trace = (
        'Traceback (most recent call last):\n  File "x.py", line 1\nFileNotFoundError: policy.key'
    )
    _fail_with(monkeypatch, {"cell": 6, "error": "FileNotFoundError", "message": "policy.key",
                             "fix": "", "traceback": trace})  # fmt: skip
    assert main(["run", "05"]) == 1
    err = capsys.readouterr().err
    assert trace in err and "resume with:" not in err
    assert "fix: a bug in helm-runbook" in err and "see the executed notebook" not in err


def test_a_failure_resuming_can_fix_keeps_the_resume_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _build_in(tmp_path, monkeypatch)
    _fail_with(monkeypatch, {"cell": 9, "error": "StepFailed", "message": "smoke: 503",
                             "fix": "kubectl describe pod", "step": "smoke"})  # fmt: skip
    assert main(["run", "04"]) == 5
    assert "resume with: helm-runbook run --resume 04" in capsys.readouterr().err
