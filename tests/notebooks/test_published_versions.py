"""Two chart versions of the real site published side by side and read back in Chromium: the
version selector lists both, the older one says it is not the latest and links to it, and the
root sends readers to ``latest``."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from helm_runbook.site.publish import BUILD_INFO, publish_site
from tests.browser import Browser, chromium_binary, serve_directory

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def _verified_copy(site: Path, to: Path, chart: str) -> Path:
    """The run's site as a clean commit's passing run of ``chart`` would have built it (the
    checkout under test may have uncommitted changes; provenance itself is test_publish's)."""
    shutil.copytree(site, to)
    info = json.loads((to / BUILD_INFO).read_text())
    assert info["passed"] is True, info["runbooks"]
    info.update(commit="c0ffee" * 6 + "ab", dirty=False, chart_version=chart)
    (to / BUILD_INFO).write_text(json.dumps(info))
    return to


def test_two_versions_read_back_in_a_browser(run: dict[str, Any], tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "Chromium is not installed: `make system-deps` installs Debian's chromium (needs root)"
        )
    repo = tmp_path / "pages.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    publish_site(_verified_copy(run["site"], tmp_path / "old", "0.8.3"), repo=repo)
    publish_site(_verified_copy(run["site"], tmp_path / "new", "0.8.4"), repo=repo)
    served = tmp_path / "served"
    served.mkdir()
    archive = subprocess.run(
        ["git", "archive", "gh-pages"], cwd=repo, check=True, capture_output=True
    ).stdout
    (tmp_path / "pages.tar").write_bytes(archive)
    with tarfile.open(tmp_path / "pages.tar") as tar:
        tar.extractall(served, filter="data")

    page = Browser(binary)
    try:
        with serve_directory(served) as origin:
            page.goto(f"{origin}/")
            page.wait_for("location.pathname === '/latest/'")

            page.goto(f"{origin}/0.8.3/runbooks/04-smoke-checks/")
            listed = page.wait_for(
                "(() => { const a = [...document.querySelectorAll('.md-version__list .md-version__link')];"
                " return a.length ? a.map(x => x.textContent.trim()) : null })()"
            )
            assert [v.split()[0] for v in listed] == ["0.8.4", "0.8.3"]
            assert (
                page.evaluate("document.querySelector('.md-version__current').textContent.trim()")
                == "0.8.3"
            )
            # named by the version it shows, not "Select version" (site/lighten.py)
            label = page.evaluate(
                "document.querySelector('.md-version__current').getAttribute('aria-label')"
            )
            assert not label, label
            banner = "document.querySelector('[data-md-component=outdated]')"
            page.wait_for(f"!{banner}.hidden")
            assert "not the latest release" in page.evaluate(f"{banner}.innerText")
            # the banner and the version selector pass axe-core in both schemes (the theme keeps
            # the banner light on a dark page)
            assert page.axe() == []
            page.switch_scheme("slate")
            assert page.axe() == []
            page.switch_scheme("default")
            page.evaluate(f"{banner}.querySelector('a').click()")
            page.wait_for("location.pathname === '/latest/' && document.readyState === 'complete'")
            assert page.evaluate(f"{banner}.hidden") is True
            current = "(document.querySelector('.md-version__current') || {}).textContent"
            assert page.wait_for(current).strip() == "0.8.4"  # the theme's script inserts it
            outside = [
                u for u in page.requests if not u.startswith((origin, "data:", "blob:", "about:"))
            ]
            assert outside == []
    finally:
        page.close()
