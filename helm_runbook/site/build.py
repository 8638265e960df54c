"""Build the docs site: the docs sources and the executed runbooks (each with its banner) copied
into ``<build>/docs``, the generated pages written beside them, then ``mkdocs build --strict``
with the checkout's ``mkdocs.yml`` pointed at that build directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

from helm_runbook.errors import StepFailed
from helm_runbook.imports import steered
from helm_runbook.site.lighten import lighten
from helm_runbook.site.pages import write_generated_pages
from helm_runbook.site.publish import provenance, write_provenance
from helm_runbook.site.results import add_banner

ROOT = Path(__file__).resolve().parents[2]
THEME = (
    Path(__file__).resolve().parent / "theme"
)  # mkdocs.yml's custom_dir, relative to the checkout
# `mkdocs` without the iri grammars mkdocs-jupyter's jsonschema would compile (about a second).
MKDOCS = steered("from mkdocs.__main__ import cli; cli(prog_name='mkdocs')")


def build_site(
    build: Path, *, executed: Path, report: Path, notebooks: Path, reference: Mapping[str, str] | None = None
) -> float:  # fmt: skip
    """The site into ``build/site`` from the executed copies in ``executed`` and the run report;
    ``notebooks`` holds the clean copies offered as downloads; ``reference`` the reference pages
    if computed ahead (``site.pages.reference_pages``). Returns the seconds it took."""
    start = time.perf_counter()
    run_report = json.loads(report.read_text()) if report.exists() else {"run": {}, "notebooks": []}
    entries = {e["notebook"]: e for e in run_report["notebooks"]}
    site_src = build / "docs"
    shutil.rmtree(site_src, ignore_errors=True)
    shutil.copytree(ROOT / "docs", site_src)
    (site_src / "runbooks").mkdir(exist_ok=True)
    # The committed notebooks, clean, as static downloads (mkdocs.yml tells mkdocs-jupyter to
    # leave downloads/ alone); each runbook page links to its own from the banner.
    (site_src / "downloads").mkdir(exist_ok=True)
    # mkdocs.yml names Python objects (!!python/name: the emoji icons), which safe_load refuses
    config_text = re.sub(r"!!python/\S+", "", (ROOT / "mkdocs.yml").read_text())
    directory_urls = yaml.safe_load(config_text).get("use_directory_urls", True)
    up = "../../" if directory_urls else "../"
    for notebook in sorted(executed.glob("*.ipynb")):
        copy = site_src / "runbooks" / notebook.name
        shutil.copy(notebook, copy)
        clean = notebooks / notebook.name
        download = ""
        if clean.exists():
            shutil.copy(clean, site_src / "downloads" / notebook.name)
            download = f"{up}downloads/{notebook.name}"
        if notebook.stem in entries:
            add_banner(copy, entries[notebook.stem], run_report.get("run", {}), download)
    write_generated_pages(site_src, run_report, reference)
    # mkdocs.yml names build/docs and build/site; a build elsewhere (tests) gets its own copy.
    config = build / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace("docs_dir: build/docs", f"docs_dir: {site_src}")
                      .replace("site_dir: build/site", f"site_dir: {build / 'site'}")
                      .replace("custom_dir: helm_runbook/site/theme", f"custom_dir: {THEME}"))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", MKDOCS, "build", "--strict", "-f", str(config)],
        cwd=build, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise StepFailed("docs.build", expected="mkdocs build --strict passes",
                         seen="the problems mkdocs printed above",
                         fix="fix the pages or links mkdocs names above, then build again with --resume (passed notebooks are skipped)")  # fmt: skip
    lighten(build / "site")
    write_provenance(build / "site", provenance(ROOT, run_report))  # what publishing checks
    return time.perf_counter() - start
