"""What a checkout accumulates stays out of git and out of the way: JupyterLab's checkpoints are
ignored and removed by ``make clean``, and the README names every Debian package a make verb
installs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_jupyterlab_checkpoints_are_ignored_and_none_is_tracked() -> None:
    assert _git("check-ignore", "notebooks/.ipynb_checkpoints/04-smoke-checks-checkpoint.ipynb")
    assert ".ipynb_checkpoints" not in _git("ls-files")


def test_make_clean_removes_jupyterlab_checkpoints(tmp_path: Path) -> None:
    """``make clean`` run in a copy of the Makefile, with nothing to stop (no .venv)."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    checkpoints = tmp_path / "notebooks" / ".ipynb_checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "01-chart-lint-checkpoint.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "01-chart-lint.ipynb").write_text("{}")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert not checkpoints.exists() and (tmp_path / "notebooks" / "01-chart-lint.ipynb").exists()


def test_the_readme_names_every_debian_package_the_make_verbs_install() -> None:
    makefile = (ROOT / "Makefile").read_text()
    packages = {
        dep.split(":")[1]
        for line in re.findall(r"^[A-Z_]+_DEPS :=(.*)$", makefile, re.M)
        for dep in line.split()
        if ":" in dep
    }
    assert {"bubblewrap", "prometheus", "nginx", "postgresql", "chromium"} <= packages
    readme = (ROOT / "README.md").read_text()
    assert [p for p in sorted(packages) if f"`{p}`" not in readme] == []
