"""The site build on its own (the full run builds it from executed runbooks in tests/notebooks):
the committed notebooks stand in for executed copies, so this needs no kernel."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_runbook import runner
from helm_runbook.errors import StepFailed
from helm_runbook.site.build import build_site


@pytest.fixture
def build() -> Iterator[Path]:
    # inside the checkout, as make runbook builds: mkdocs.yml's paths are rewritten to it
    path = runner.BUILD / f"test-site-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    (path / "runbooks").mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# What an operator's run can carry into the pages (a target's name, a skipped step's reason quoting
# a parameter, a step's name): each must reach the reader as the text it is, never as markup.
HOSTILE = "<img src=x onerror=alert(1)> </script><script>alert(2)</script> `rm -rf /` [click](javascript:alert(3)) *loud*"
ACTIVE = re.compile(
    r"<img src=.?x|<script>alert|href=.?javascript:|<code>rm -rf|<em>loud|onerror=alert\(1\)>", re.I
)


@pytest.mark.slow
def test_the_site_builds_strictly_with_a_banner_on_each_runbook(build: Path) -> None:
    entries = []
    for notebook in runner.notebooks():
        shutil.copy(notebook, build / "runbooks" / notebook.name)
        entries.append({"notebook": notebook.stem, "status": "passed", "duration_s": 1.0, "failure": None,
                        "steps": [{"step": "lint", "ok": True, "seconds": 0.5, "cell": 2, "values": {}},
                                  {"step": f"wake {HOSTILE}", "ok": True, "seconds": 0.0, "cell": 3,
                                   "values": {"skipped": f"parameter control_plane_url={HOSTILE}"}}]})  # fmt: skip
    report = build / "runbook-report.json"
    run = {
        "target": f"local{HOSTILE}",
        "finished": HOSTILE,
        "runtime_version": HOSTILE,
        "chart_version": HOSTILE,
    }
    report.write_text(json.dumps({"run": run, "notebooks": entries}))
    # The reference pages as the runner hands them over, computed ahead (their content has its
    # own tests in test_pages.py; the strict failure below computes them inside the build).
    reference = {
        f"reference/{name}.md": f"# {name}\n"
        for name in ("values", "environment", "routes", "guards")
    }
    reference["topology.svg"] = '<svg xmlns="http://www.w3.org/2000/svg"/>'
    took = build_site(build, executed=build / "runbooks", report=report, notebooks=runner.NOTEBOOKS,
                      reference=reference)  # fmt: skip
    assert took > 0
    site = build / "site"
    page = (site / "runbooks" / "04-smoke-checks" / "index.html").read_text()
    assert "helm-runbook-banner" in page and "1 steps passed, 1 skipped" in page
    assert (site / "downloads" / "04-smoke-checks.ipynb").exists()
    for reference in ("values", "environment", "routes", "guards"):
        assert (site / "reference" / reference / "index.html").exists()
    # the hostile text is on the results page and each banner, inert everywhere
    pages = {p.relative_to(site).as_posix(): p.read_text() for p in site.rglob("*.html")}
    assert "wake &lt;img src=x onerror=alert(1)&gt;" in pages["results/index.html"]
    assert "[click](javascript:alert(3))" in pages["results/index.html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["runbooks/04-smoke-checks/index.html"]
    assert {name: ACTIVE.findall(text) for name, text in pages.items() if ACTIVE.search(text)} == {}


@pytest.mark.slow
def test_a_strict_build_failure_is_a_step_failure_naming_the_fix(build: Path) -> None:
    """No executed runbooks: the overview links to pages that are not there, mkdocs --strict
    refuses, and the runner's error boundary gets a StepFailed (one error line, one fix)."""
    with pytest.raises(StepFailed, match=r"docs\.build") as failed:
        build_site(
            build,
            executed=build / "runbooks",
            report=build / "none.json",
            notebooks=runner.NOTEBOOKS,
        )
    assert "build again" in failed.value.fix
