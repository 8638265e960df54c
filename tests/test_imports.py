"""The processes that validate schemas do so without compiling the iri grammars
(helm_runbook/imports.py): the runner, the docs build, JupyterLab, strict manifest validation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helm_runbook.harness.lab import JUPYTERLAB
from helm_runbook.imports import steered
from helm_runbook.site.build import MKDOCS


def _loaded_after(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", f"{script}; import sys; print(sys.modules.get('rfc3987_syntax'))"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-800:]
    return done.stdout.strip().splitlines()[-1]


def test_the_runner_reads_and_executes_notebooks_without_the_iri_grammars() -> None:
    script = ("from helm_runbook import runner; runner.declared_parameters(runner.notebooks()[0]); "
              "import papermill.execute")  # fmt: skip
    assert _loaded_after(script) == "None"


@pytest.mark.parametrize(
    ("command", "imports"),
    [(MKDOCS, "mkdocs_jupyter.plugin, nbformat"),
     (JUPYTERLAB, "jupyterlab.labapp, jupyter_server.serverapp, jupyter_events")],
    ids=["mkdocs", "jupyterlab"],
)  # fmt: skip
def test_the_tools_started_as_processes_load_without_the_iri_grammars(
    command: str, imports: str
) -> None:
    assert command.startswith(steered(""))
    assert _loaded_after(steered(f"import {imports}")) == "None"


def test_without_the_steering_jsonschema_would_compile_them() -> None:
    """The check above can fail: plain imports load the module here (it is installed)."""
    assert _loaded_after("import mkdocs_jupyter.plugin") != "None"
