"""The published site as an operator reads it: self-contained, every runbook page carries its
banner and executed outputs, generated reference and results pages, and a real browser
(headless Chromium) navigating and searching it. Screenshots go to build/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from helm_runbook import runbook
from tests.browser import Browser, chromium_binary, serve_directory

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
SCREENSHOTS = runbook.ROOT / "build" / "screenshots"
ASSET = re.compile(
    r"""<(?:script|img|iframe|source|video|audio)\b[^>]*\bsrc=["']([^"']*)["']|<link\b[^>]*\bhref=["']([^"']*)["']"""
)


def test_no_page_references_an_external_asset(run: dict[str, Any]) -> None:
    pages = list(run["site"].rglob("*.html"))
    assert len(pages) >= 12
    external = {
        (page.relative_to(run["site"]).as_posix(), url)
        for page in pages
        for match in ASSET.finditer(page.read_text())
        if (url := match.group(1) if match.group(1) is not None else match.group(2)).startswith(
            ("http:", "https:", "//")
        )
    }
    assert external == set()


def test_every_runbook_page_has_its_banner(run: dict[str, Any]) -> None:
    for notebook in runbook.notebooks():
        page = (run["site"] / "runbooks" / notebook.stem / "index.html").read_text()
        banner = re.search(
            r'<div class="admonition (\w+) helm-runbook-banner">.*?</div>', page, re.S
        )
        assert banner, notebook.stem
        assert banner.group(1) == "success" and "steps passed" in banner.group(0)
        assert "chart 0.8.4" in banner.group(0) and "<code>local</code>" in banner.group(0)


def test_reference_and_results_pages_are_generated(run: dict[str, Any]) -> None:
    site = run["site"]
    routes = (site / "reference" / "routes" / "index.html").read_text()
    assert "/internal/policy/reconcile" in routes and "reconcilePolicy" in routes
    env = (site / "reference" / "environment" / "index.html").read_text()
    assert "HELM_POLICY_TRUST_PUBLIC_KEY" in env
    guards = (site / "reference" / "guards" / "index.html").read_text()
    assert "production never generates key material" in guards
    values = (site / "reference" / "values" / "index.html").read_text()
    assert "persistence.enabled" in values
    results = (site / "results" / "index.html").read_text()
    steps = sum(len(e["steps"]) for e in run["report"]["notebooks"])
    assert results.count("✅ passed") == steps + len(run["report"]["notebooks"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "Chromium is not installed: `make system-deps` installs Debian's chromium (needs root)"
        )
    page = Browser(binary)
    yield page
    page.close()


def test_a_browser_reads_navigates_and_searches_the_site(
    run: dict[str, Any], browser: Browser
) -> None:
    with serve_directory(run["site"]) as origin:
        browser.goto(f"{origin}/")
        assert "05 · Policy rollout" in browser.text()
        browser.screenshot(SCREENSHOTS / "overview.png")

        browser.goto(f"{origin}/runbooks/04-smoke-checks/")
        text = browser.text()
        [entry] = [e for e in run["report"]["notebooks"] if e["notebook"] == "04-smoke-checks"]
        assert "Verified run" in text and f"all {len(entry['steps'])} steps passed" in text
        assert "DENY" in text and "PDP_DENY" in text  # the governed request's executed output
        assert "receipts.verify" in text or "signatures" in text.lower()
        browser.screenshot(SCREENSHOTS / "04-smoke-checks.png")

        browser.evaluate(
            "document.querySelector('a.md-nav__link[href$=\"05-policy-rollout/\"]').click()"
        )
        browser.wait_for("location.pathname.endsWith('/runbooks/05-policy-rollout/')")
        browser.wait_for(
            "document.readyState === 'complete' && document.body.innerText.includes('validate_error')"
        )
        browser.screenshot(SCREENSHOTS / "05-policy-rollout.png")

        browser.goto(f"{origin}/runbooks/06-troubleshooting/")
        assert "policy-signature" in browser.text() and "PROBLEM" in browser.text()
        browser.screenshot(SCREENSHOTS / "06-troubleshooting.png")

        browser.evaluate("document.querySelector('label[for=__search]').click()")
        browser.wait_for(
            "!document.querySelector('.md-search-result__meta').innerText.includes('Initializing')"
        )
        browser.evaluate(
            "(() => { const i = document.querySelector('.md-search__input'); i.focus(); i.value = 'wake hint';"
            " i.dispatchEvent(new Event('input', {bubbles: true}));"
            " i.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true, key: 't'})); return true })()"
        )
        hits = browser.wait_for("document.querySelectorAll('.md-search-result__item').length", 20)
        assert hits >= 1
        titles = browser.evaluate(
            "[...document.querySelectorAll('.md-search-result__item')].map(e => e.innerText).join(' | ')"
        )
        assert "olicy" in titles
        browser.screenshot(SCREENSHOTS / "search.png")
        outside = [
            url
            for url in browser.requests
            if not url.startswith((origin, "data:", "blob:", "about:"))
        ]
        assert outside == []
