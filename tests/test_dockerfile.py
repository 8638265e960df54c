"""The reference image carries what every storage mode of the chart imports."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_image_installs_the_postgres_extra() -> None:
    """``helm.storage.type=postgres`` imports psycopg: without the extra the pod dies with
    ModuleNotFoundError at its first request."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    [spec] = re.findall(r"pip install [^\n]*?'?\.\[?([a-z,]*)\]?'?\s*$", dockerfile, re.M)
    extras = set(spec.split(","))
    assert "postgres" in extras, f"the image installs extras {sorted(extras - {''})}"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "postgres" in declared["optional-dependencies"]
    store = (ROOT / "helm_runbook" / "runtime" / "store").glob("*.py")
    assert any("psycopg" in path.read_text() for path in store), "the store still imports psycopg"
