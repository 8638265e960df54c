"""``helm-runbook smoke --url`` and ``helm-runbook run`` for operators who do not use Jupyter."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook import runner
from helm_runbook.cli import main
from helm_runbook.standins.process import RuntimeProcess
from tests.conftest import ADMIN_KEY, default_env, write_policy

pytestmark = pytest.mark.slow


def test_smoke_against_an_existing_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with RuntimeProcess(
        write_policy(tmp_path / "policy"), tmp_path / "data", env=default_env()
    ) as rt:
        monkeypatch.setenv("HELM_RUNBOOK_ADMIN_API_KEY", ADMIN_KEY)
        assert main(["smoke", "--url", rt.url, "--health-url", rt.health_url]) == 0
        assert "smoke: deployment guide smoke checks: PASS" in capsys.readouterr().out
        monkeypatch.setenv("HELM_RUNBOOK_ADMIN_API_KEY", "wrong")
        assert main(["smoke", "--url", rt.url]) == 4  # the runtime answered 401
        err = capsys.readouterr().err
        assert (
            "/api/v1/evaluate answered 401" in err
            and "fix: send the value of HELM_ADMIN_API_KEY" in err
        )


@pytest.mark.notebooks
def test_run_one_runbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "BUILD", tmp_path)
    monkeypatch.setattr(runner, "REPORT", tmp_path / "runbook-report.json")
    monkeypatch.setattr(runner, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "wd")
    assert main(["run", "01", "-p", "kube_version", "1.30.0"]) == 0
    assert (tmp_path / "runbooks" / "01-chart-lint.ipynb").exists()
    assert main(["run", "02", "--target", "some-context"]) == 3  # the context cannot be reached
    assert "fix:" in capsys.readouterr().err
