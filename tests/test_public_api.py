"""The package's public surface: ``__all__`` is sorted, complete and resolves, and the runbooks
import nothing else."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import nbformat

import helm_runbook
from helm_runbook import errors, runner, steps
from helm_runbook.steps import policy as policy_steps
from helm_runbook.steps import presets, troubleshoot, upstream


def _isort_style(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions and dunders."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_resolves() -> None:
    assert list(helm_runbook.__all__) == sorted(helm_runbook.__all__, key=_isort_style)
    for name in helm_runbook.__all__:
        assert getattr(helm_runbook, name) is not None, name


def test_all_is_complete() -> None:
    """Every step function, every error an operator may catch, the client and the targets."""
    expected = {*steps.__all__, *policy_steps.__all__, "start_stand_in_upstream", "TroubleshootingLab", "reset_target",
                "open_target", "diagnose", "RuntimeClient", "Credentials", "StepReport", "Table"}  # fmt: skip
    expected |= {name for name, obj in vars(errors).items()
                 if inspect.isclass(obj) and issubclass(obj, errors.RunbookError)}  # fmt: skip
    expected |= set(presets.__all__)  # the shared presets the runbooks use
    expected |= {"RunProfile", "load_profile", "use_profile"}  # the run profile every runbook reads
    expected -= {"FAULTS"}  # the lab's fault names are data, reached through TroubleshootingLab
    assert expected - set(helm_runbook.__all__) == set()
    assert upstream.start_stand_in_upstream is helm_runbook.start_stand_in_upstream
    assert troubleshoot.TroubleshootingLab is helm_runbook.TroubleshootingLab


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = "import sys, helm_runbook; print(sorted(m for m in ('helm_python', 'kubernetes', 'nacl', 'httpx') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_runbooks_import_only_the_public_api() -> None:
    offenders = []
    for path in runner.notebooks():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Import):
                    offenders += [f"{path.name}: import {a.name}" for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = {a.name for a in node.names}
                    if node.module != "helm_runbook" or not names <= set(helm_runbook.__all__):
                        offenders.append(f"{path.name}: from {node.module} import {sorted(names)}")
    assert offenders == []


def test_errors_carry_their_fix() -> None:
    err = helm_runbook.StepFailed(
        "smoke.health", expected="200 on :8081/health", seen="404", fix="port-forward 8081"
    )
    assert "smoke.health" in str(err)
    assert str(err).endswith("fix: port-forward 8081")


def test_importing_the_package_spares_httpx_its_command_line_client() -> None:
    """httpx's CLI (rich, pygments: about 0.13 s of every kernel and pod) never loads; the
    client works as before."""
    script = (
        "import sys, helm_runbook, httpx\n"
        "print(sys.modules.get('httpx._main') is None, 'rich' in sys.modules, httpx.Client.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()  # fmt: skip
    assert out == ["True", "False", "Client"]
