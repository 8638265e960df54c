"""Imports the project steers: modules a dependency loads for features we never use.

The runtime steers its own (uvicorn's command line in ``runtime/cli.py``, cel's in
``runtime/policy/compiler.py``): it imports nothing of the operator side.

**The iri grammars.** jsonschema imports ``rfc3987_syntax`` whenever it is installed
(JupyterLab's jupyter-events asks for ``jsonschema[format-nongpl]``, which brings it), and that
module compiles 38 lark grammars at import: a second or more of every process importing
jsonschema on these machines (the runner through papermill and nbformat, mkdocs through
mkdocs-jupyter, JupyterLab through jupyter-events, strict manifest validation, each test worker).
The grammars only check the "iri" and "iri-reference" formats, which none of the schemas these
processes validate (notebooks, Kubernetes objects, the runtime's OpenAPI, Jupyter's event
schemas) uses; without the module jsonschema leaves those two formats unchecked.

**httpx's command line.** httpx's ``__init__`` imports its command-line client, and with it rich
and pygments (about 0.13 s of every notebook kernel, test process and proxied runtime), unless
that import fails, when it defines a stub ``main``. Nothing here runs httpx's CLI: the ``httpx``
command is its own process.
"""

from __future__ import annotations

import sys


def skip_iri_grammars() -> None:
    """Keep ``rfc3987_syntax`` from loading in this process (no effect once it has loaded)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def skip_httpx_cli() -> None:
    """Keep httpx's command-line client (rich, pygments) from loading with httpx (no effect once
    httpx has loaded)."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def steered(code: str) -> str:
    """``python -c`` code running ``code`` with the iri grammars skipped: for the tools the
    project starts as processes of their own (mkdocs, JupyterLab)."""
    return f"from helm_runbook.imports import skip_iri_grammars; skip_iri_grammars(); {code}"
