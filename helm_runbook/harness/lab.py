"""The runbooks by hand: the ``helm-runbook`` Jupyter kernel and ``make lab`` (JupyterLab).

The kernel is installed into this environment (``sys.prefix``), never into the user's global
kernelspecs, so a notebook that declares ``helm-runbook`` runs this project's Python wherever it
is opened. JupyterLab is bound to 127.0.0.1; its token comes from Jupyter's own
``JUPYTER_TOKEN`` (generated and printed once when unset) and travels in the environment, never
on the command line.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import NoReturn

from helm_runbook.errors import InputError
from helm_runbook.imports import steered

KERNEL_NAME = "helm-runbook"
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def kernel_spec() -> dict[str, object]:
    """This interpreter as a kernel; the kernel's own log quietened to errors (its TCP-transport
    warning would otherwise repeat once per notebook in every run)."""
    return {
        "argv": [
            sys.executable,
            "-Xfrozen_modules=off",
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": "helm-runbook",
        "language": "python",
        "metadata": {"debugger": True},
    }


def ensure_kernel() -> Path:
    """Install (or refresh) the ``helm-runbook`` kernelspec under ``sys.prefix``; idempotent."""
    directory = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    path = directory / "kernel.json"
    spec = kernel_spec()
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if current != spec:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec, indent=1) + "\n")
    return directory


# `python -m jupyterlab` without the iri grammars jupyter-events' jsonschema would compile at
# start (a second or more of every JupyterLab start).
JUPYTERLAB = steered("import sys; from jupyterlab.labapp import main; sys.exit(main())")


#: JupyterLab settings of this environment, as a team's onboarding image sets them: no question
#: about fetching Jupyter's news over the first runbook, no update check (no network but the
#: package registries).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}


def ensure_lab_settings() -> Path:
    """Merge ``LAB_SETTINGS`` into this environment's JupyterLab ``overrides.json`` (under
    ``sys.prefix``, never the user's own settings); other overrides there are kept."""
    path = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    merged = {**current, **{k: {**(current.get(k) or {}), **v} for k, v in LAB_SETTINGS.items()}}
    if merged != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=1) + "\n")
    return path


def lab_command(port: int, notebook_dir: Path) -> list[str]:
    """``jupyter lab`` on 127.0.0.1 in ``notebook_dir``; no secret on the command line."""
    return [sys.executable, "-c", JUPYTERLAB, "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebook_dir}",
            f"--ServerApp.open_browser={'True' if _has_display() else 'False'}",
            f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
            *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else [])]  # containers and CI run as root  # fmt: skip


def _has_display() -> bool:
    return bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin"
    )


def lab_port(value: str | None = None) -> int:
    raw = value if value is not None else os.environ.get("LAB_PORT", "8888")
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InputError(
            f"LAB_PORT={raw!r} is not a TCP port", fix="set LAB_PORT to a number from 1 to 65535"
        )
    return int(raw)


def serve_lab(port: int | None = None, notebook_dir: Path | None = None) -> NoReturn:
    """Become JupyterLab serving ``notebooks/`` (or ``notebook_dir``)."""
    chosen = lab_port(None if port is None else str(port))
    directory = notebook_dir or NOTEBOOKS
    if not directory.is_dir():
        raise InputError(
            f"{directory} is not a directory", fix="pass the folder holding the runbooks"
        )
    ensure_kernel()
    ensure_lab_settings()
    env = dict(os.environ)
    if not env.get("JUPYTER_TOKEN"):
        env["JUPYTER_TOKEN"] = secrets.token_urlsafe(24)
        print(
            f"JUPYTER_TOKEN was not set; generated one for this session: {env['JUPYTER_TOKEN']}",
            flush=True,
        )
    print(f"JupyterLab in {directory}: http://127.0.0.1:{chosen}/lab?token=<JUPYTER_TOKEN>  (Ctrl-C stops it)",
          flush=True)  # fmt: skip
    # JupyterLab replaces this process: a signal to it (Ctrl-C, a supervisor's SIGTERM) reaches
    # the server itself, which shuts down its kernels; nothing is left running behind it.
    command = lab_command(chosen, directory)
    os.execve(command[0], command, env)


__all__ = ["KERNEL_NAME", "ensure_kernel", "ensure_lab_settings", "serve_lab"]
