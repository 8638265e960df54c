"""The processes that validate schemas do so without compiling the iri grammars
(helm_runbook/imports.py): the runner, the docs build, strict manifest validation."""

from __future__ import annotations

import subprocess
import sys

from helm_runbook.harness.lab import JUPYTERLAB
from helm_runbook.site.build import MKDOCS


def _loaded_after(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", f"{script}; import sys; print(sys.modules.get('rfc3987_syntax'))"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-800:]
    return done.stdout.strip().splitlines()[-1]


def test_the_runner_reads_and_executes_notebooks_without_the_iri_grammars() -> None:
    script = ("from helm_runbook.harness import runbook; runbook.declared_parameters(runbook.notebooks()[0]); "
              "import papermill.execute")  # fmt: skip
    assert _loaded_after(script) == "None"


def test_the_docs_build_loads_its_notebook_plugin_without_the_iri_grammars() -> None:
    prefix = MKDOCS.split("from mkdocs.__main__")[0]
    assert _loaded_after(prefix + "import mkdocs_jupyter.plugin, nbformat") == "None"


def test_jupyterlab_starts_its_server_without_the_iri_grammars() -> None:
    prefix = JUPYTERLAB.split("import sys;")[0]
    assert (
        _loaded_after(prefix + "import jupyterlab.labapp, jupyter_server.serverapp, jupyter_events")
        == "None"
    )


def test_without_the_steering_jsonschema_would_compile_them() -> None:
    """The check above can fail: plain imports load the module here (it is installed)."""
    assert _loaded_after("import mkdocs_jupyter.plugin") != "None"
