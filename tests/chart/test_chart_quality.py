"""Lint, the schema, the values docs, the ci/ scenarios and the smoke entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.docs import render_readme, value_docs
from helm_runbook.chart.manifests import validate
from helm_runbook.chart.sdk import lint, render, set_values
from helm_runbook.chart.smoke import ci_files, main
from helm_runbook.errors import ValuesError


def test_lint_is_clean() -> None:
    report = lint(CHART_DIR)
    assert report.ok, report.errors


def test_every_value_is_documented_and_in_the_schema() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    for doc in value_docs(CHART_DIR / "values.yaml"):
        assert doc.description, f"{doc.key} has no `# --` comment"
        node = schema
        for part in doc.key.split("."):
            assert part in node.get("properties", {}), f"{doc.key} is not in values.schema.json"
            node = node["properties"][part]
        assert node.get("description"), f"{doc.key} has no schema description"


def test_schema_has_no_remote_refs() -> None:
    assert '"$ref": "http' not in (CHART_DIR / "values.schema.json").read_text()


def test_readme_values_table_is_generated() -> None:
    readme = CHART_DIR / "README.md"
    assert readme.read_text() == render_readme(readme, CHART_DIR / "values.yaml"), (
        "the README values table drifted: run `python -m helm_runbook.chart.docs`"
    )


@pytest.mark.parametrize(
    ("expression", "named"),
    [("image.pullPolicy=Sometimes", "image.pullPolicy"), ("helm.storage.type=mysql", "helm.storage.type"),
     ("service.port=70000", "service.port"), ("persistence.accessModes={ReadWriteSometimes}", "persistence.accessModes"),
     ("helm.policy.source.controlplane.url=http://cp.example", "helm.policy.source.controlplane.url"),
     ("helm.storage.sqlite.extra=1", "helm.storage.sqlite")],
)  # fmt: skip
def test_schema_names_the_bad_value(expression: str, named: str) -> None:
    with pytest.raises(ValuesError) as refused:
        render(CHART_DIR, set_values(expression))
    assert named in refused.value.message


@pytest.mark.parametrize("path", ci_files(), ids=lambda p: p.name)
def test_ci_scenarios_render_and_validate_strictly(path: Path) -> None:
    assert path.read_text().startswith("# Proves:"), "each ci/ file opens with what it proves"
    release = render(CHART_DIR, yaml.safe_load(path.read_text()) or {})
    report = validate(release)
    assert report.ok, report.failed
    for name in report.unchecked:
        assert name.split("/")[0] in {"ServiceMonitor"}, f"{name} unexpectedly has no schema"
    text = yaml.safe_dump_all([obj for _, obj in release.objects])
    if "postgres" in path.name:
        assert "postgres://" not in text and "POSTGRES_PASSWORD" not in text


def test_strict_validation_catches_a_misspelled_field() -> None:
    release = render(CHART_DIR)
    assert validate(release).ok  # the schemas parsed once before: each object still checked
    deployment = release.get("Deployment")
    deployment["spec"]["replica"] = 1
    report = validate(release)
    assert not report.ok and "replica" in report.failed[0][1]


def test_smoke_entry_point_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main() == 0
    assert "helm-chart-smoke: PASS" in capsys.readouterr().out


def test_strict_validation_does_not_compile_the_iri_grammars() -> None:
    """jsonschema imports rfc3987_syntax when installed, which compiles 38 lark grammars (about
    3 s of runbook 01) for "iri" formats no Kubernetes schema uses: validation goes without it."""
    import subprocess
    import sys

    script = (
        "import sys; from helm_runbook.chart import CHART_DIR; from helm_runbook.chart.sdk import render; "
        "from helm_runbook.chart.manifests import validate; "
        "assert validate(render(CHART_DIR, {})).ok; print(sys.modules.get('rfc3987_syntax'))"
    )
    seen = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert seen.returncode == 0, seen.stderr[-600:]
    assert seen.stdout.strip() == "None"
