"""Every runbook leaves the release healthy: after it, a pod restart comes back ready and runbook
04 passes, as a person re-checking by hand would find it (the issue's trap: 05 left a tampered
policy in the ConfigMap, and the next pod start refused it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_runbook import runner
from helm_runbook.targets.local import LocalTarget

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
CHECK = "04-smoke-checks"


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A build of its own with the release installed (02, 03), stopped at the end."""
    for name, value in {"BUILD": tmp_path, "EXECUTED": tmp_path / "runbooks", "WORKDIR": tmp_path / "local-target",
                        "REPORT": tmp_path / "runbook-report.json"}.items():  # fmt: skip
        monkeypatch.setattr(runner, name, value)
    (tmp_path / "runbooks").mkdir()
    try:
        for stem in ("02-secret-setup", "03-production-install"):
            _passes(stem)
        yield tmp_path
    finally:
        runner.stop_local_target(tmp_path / "local-target")


def _passes(stem: str) -> None:
    entry = runner.execute(runner.NOTEBOOKS / f"{stem}.ipynb", cell_timeout=180)
    assert entry["status"] == "passed", (stem, entry["failure"])


def _restart_then_04(build: Path, after: str) -> None:
    """``kubectl rollout restart``, the new pod ready, then runbook 04 passes."""
    target = LocalTarget.open(build / "local-target")
    target.restart_pod()
    try:
        target.wait_ready(timeout=60)
    except Exception as exc:
        log = target.logs()[-800:] if target.pod is not None else ""
        raise AssertionError(
            f"after {after}, the restarted pod is not ready: {exc}\n{log}"
        ) from exc
    entry = runner.execute(runner.NOTEBOOKS / f"{CHECK}.ipynb", cell_timeout=180)
    assert entry["status"] == "passed", (f"04 after {after}", entry["failure"])


@pytest.mark.timeout(1200)
def test_after_each_runbook_a_restart_comes_back_ready_and_04_passes(build: Path) -> None:
    """One target through every runbook but 05 (below), each followed by a restart and 04."""
    for notebook in runner.notebooks():
        if notebook.stem.startswith("05"):
            continue
        _passes(notebook.stem)
        _restart_then_04(build, notebook.stem)


@pytest.mark.timeout(600)
def test_after_runbook_05_a_restart_comes_back_ready_and_04_passes(build: Path) -> None:
    _passes("05-policy-rollout")
    _restart_then_04(build, "05-policy-rollout")
