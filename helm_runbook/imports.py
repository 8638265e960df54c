"""Imports the project steers, for every process that validates JSON schemas.

jsonschema imports ``rfc3987_syntax`` whenever it is installed (JupyterLab's jupyter-events asks
for ``jsonschema[format-nongpl]``, which brings it), and that module compiles 38 lark grammars at
import: about a second of every process importing jsonschema on these machines (the runner
through papermill and nbformat, mkdocs through mkdocs-jupyter, strict manifest validation, each
test worker). The grammars only check the "iri" and "iri-reference" formats, which none of the
schemas we validate (notebooks, Kubernetes objects, the runtime's OpenAPI) uses; without the
module jsonschema leaves those two formats unchecked.
"""

from __future__ import annotations

import sys


def skip_iri_grammars() -> None:
    """Keep ``rfc3987_syntax`` from loading in this process (no effect once it has loaded)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
