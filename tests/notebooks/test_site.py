"""The published site as an operator reads it: self-contained, every runbook page carries its
banner and executed outputs, generated reference and results pages, and a real browser
(headless Chromium) navigating and searching it. Screenshots go to build/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from helm_runbook import runner
from tests.browser import SCHEME, TOGGLE, Browser, chromium_binary, serve_directory

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
SCREENSHOTS = runner.ROOT / "build" / "screenshots"
# What a browser fetches by itself: an element's src, a stylesheet or icon link, a CSS @import or
# url(), a JS module import (static or dynamic) or importScripts in a worker.
FETCHED = re.compile(
    r"""<(?:script|img|iframe|source|video|audio|embed|track|input)\b[^>]*\bsrc=["']?([^"'\s>]*)"""
    r"""|<link\b[^>]*\bhref=["']?([^"'\s>]*)|@import\s+(?:url\()?["']?([^"')\s;]*)"""
    r"""|url\(\s*["']?([^"')\s]*)|\bimport\s*\(?\s*["']([^"']*)["']|\bfrom\s*["']([^"']*)["']"""
    r"""|importScripts\(\s*["']([^"']*)["']""",
    re.I,
)


def test_no_page_references_an_external_asset(run: dict[str, Any]) -> None:
    """Offline for sure: no built page, stylesheet or script fetches anything from outside the site."""
    files = [p for p in run["site"].rglob("*") if p.suffix in (".html", ".css", ".js", ".svg")]
    assert len(files) >= 20
    external = {
        (path.relative_to(run["site"]).as_posix(), url)
        for path in files
        for match in FETCHED.finditer(path.read_text(errors="replace"))
        if (url := next(g for g in match.groups() if g is not None)).startswith(
            ("http:", "https:", "//")
        )
    }
    assert external == set()
    assert not list(run["site"].rglob("*.map"))  # no source maps published


# Pictographs a reader's fonts may lack (a machine without an emoji font shows empty boxes)
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u23e9-\u23fa]")


def test_marks_are_the_themes_svg_icons_never_emoji(run: dict[str, Any]) -> None:
    pages = {
        p.relative_to(run["site"]).as_posix(): p.read_text() for p in run["site"].rglob("*.html")
    }
    emoji = {name: set(EMOJI.findall(re.sub(r"<script.*?</script>", "", text, flags=re.S)))
             for name, text in pages.items()}  # fmt: skip
    assert {name: found for name, found in emoji.items() if found} == {}
    assert '<span class="twemoji helm-ok">' in pages["guide-coverage/index.html"]


def test_every_runbook_page_has_its_banner(run: dict[str, Any]) -> None:
    for notebook in runner.notebooks():
        page = (run["site"] / "runbooks" / notebook.stem / "index.html").read_text()
        banner = re.search(
            r'<div class="admonition (\w+) helm-runbook-banner">.*?</div>', page, re.S
        )
        assert banner, notebook.stem
        assert banner.group(1) == "success" and "steps passed" in banner.group(0)
        assert "chart 0.8.4" in banner.group(0) and "<code>local</code>" in banner.group(0)
        # the clean notebook is offered from the page, and it is the committed one
        link = re.search(r'<a [^>]*href="([^"]+)"[^>]*>download the notebook</a>', banner.group(0))
        assert link and "make lab" in banner.group(0), notebook.stem
        page_dir = run["site"] / "runbooks" / notebook.stem
        offered = (page_dir / link.group(1)).resolve()
        assert offered.read_bytes() == notebook.read_bytes(), notebook.stem


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
    passed = re.findall(
        r'<span class="twemoji helm-ok"><svg [^>]*>.*?</svg></span> passed', results
    )
    assert len(passed) == steps + len(run["report"]["notebooks"])


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
            "document.readyState === 'complete' && document.body.textContent.includes('validate_error')"
        )
        browser.screenshot(SCREENSHOTS / "05-policy-rollout.png")

        browser.goto(f"{origin}/runbooks/06-troubleshooting/")
        assert "policy-signature" in browser.text() and "PROBLEM" in browser.text()
        browser.screenshot(SCREENSHOTS / "06-troubleshooting.png")

        # The search index is fetched by the first search, not by every page (issue 31: weight)
        browser.wait_for("document.readyState === 'complete'")
        index = [url for url in browser.requests if "search_index" in url]
        assert index == [], "a page fetched the search index before anyone searched"
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
        assert [url for url in browser.requests if "search_index" in url] != []
        # A page opened from a result marks the words searched for (search.highlight)
        browser.goto(f"{origin}/runbooks/06-troubleshooting/?h=wake+hint")
        marked = browser.wait_for(
            "[...document.querySelectorAll('mark[data-md-highlight]')].map(m => m.textContent)"
            ".join(' ')"
        )
        assert "wake" in marked.lower()
        # The burst's chart is a file of its own, loaded when the reader scrolls to it
        browser.goto(f"{origin}/runbooks/09-observability-ingress/")
        chart = "document.querySelector('img[alt^=\"decisions by verdict\"]')"
        assert browser.evaluate(f"{chart}.loading") == "lazy"
        browser.evaluate(f"{chart}.scrollIntoView()")
        assert browser.wait_for(f"{chart}.complete && {chart}.naturalWidth") > 0
        outside = [
            url
            for url in browser.requests
            if not url.startswith((origin, "data:", "blob:", "about:"))
        ]
        assert outside == []


# Reading comfort (issue 20): measured in the page's layout, at a desktop and a phone width.
READING_PAGES = {
    "overview": "",
    **{page: f"reference/{page}/" for page in ("values", "environment", "routes", "guards")},
    "results": "results/",
    **{page: f"{page}/" for page in ("guide-coverage", "security", "upstream-contract")},
    **{notebook.stem: f"runbooks/{notebook.stem}/" for notebook in runner.notebooks()},
}
KEYED_PAGES = {"values", "environment", "routes"}  # the first column of their tables is a key
PROSE_PAGES = {
    "guide-coverage",
    "security",
    "upstream-contract",
}  # their tables' code is prose: it wraps
LAYOUT = """(() => {
  // Lines a box's text occupies: distinct tops of its line boxes.
  const lines = el => { const r = document.createRange(); r.selectNodeContents(el);
    return new Set([...r.getClientRects()].filter(b => b.width > 0).map(b => Math.round(b.top))).size; };
  const article = document.querySelector('article.md-content__inner');
  const tables = [...article.querySelectorAll('table')];
  const keys = tables.flatMap(t => [...t.querySelectorAll('td:first-child code')]);
  const identifiers = [...new Set([...keys, ...article.querySelectorAll('code.helm-identifier'),
    ...article.querySelectorAll('.jp-OutputArea table td:first-child:not(:last-child), .jupyter-wrapper td code')])];
  const viewport = document.documentElement.clientWidth;
  const layout = tables.map(t => {
    // Every box between the table and the page that cuts what overflows it: "shown" when none cuts
    // the table, "reachable" when each one that does can scroll (overflow-x auto or scroll).
    // A box that scrolls shows what it cuts; beyond it, only its own box can be cut further.
    let r = t.getBoundingClientRect();
    let shown = r.left >= -1 && r.right <= viewport + 1, reachable = true, cued = true;
    for (let a = t; a && a !== document.documentElement; a = a.parentElement) {
      const overflow = getComputedStyle(a).overflowX;
      if (overflow === 'visible') continue;
      const b = a.getBoundingClientRect(), left = b.left + a.clientLeft, right = left + a.clientWidth;
      const cut = a === t ? t.scrollWidth > t.clientWidth + 1 : r.right > right + 1 || r.left < left - 1;
      if (!cut) continue;
      shown = false;
      if (overflow !== 'auto' && overflow !== 'scroll') reachable = false;
      // A box that scrolls says which edge hides more, and fades it (scrollable.js, layout.css)
      const style = getComputedStyle(a), more = a.dataset.scrollMore || '';
      if (a.scrollLeft + a.clientWidth < a.scrollWidth - 1
          && (!more.includes('right') || (style.maskImage || style.webkitMaskImage) === 'none')) cued = false;
      r = {left, right};
    }
    return {head: t.rows[0] ? t.rows[0].innerText.replace(/\\s+/g, ' ').slice(0, 60) : '', shown, reachable, cued};
  });
  return {
    article: Math.round(article.getBoundingClientRect().width),
    keys: keys.length,
    identifiers: identifiers.length,
    broken: identifiers.filter(c => lines(c) > 1).map(c => c.textContent),
    hidden: layout.filter(t => !t.shown).map(t => t.head),
    clipped: layout.filter(t => !t.reachable).map(t => t.head),
    uncued: layout.filter(t => !t.cued).map(t => t.head),
    sideways: document.documentElement.scrollWidth - viewport,
    // Text a reader can see, smaller than 12 px (the element and its size)
    small: [...document.querySelectorAll('body *')].filter(e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
      && e.getClientRects().length && parseFloat(getComputedStyle(e).fontSize) < 12)
      .slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${e.className} ${getComputedStyle(e).fontSize}: ${e.textContent.trim().slice(0, 30)}`),
  };
})()"""
# After load: mkdocs-material wraps the tables and docs/javascripts/scrollable.js marks what scrolls.
SETTLED = "document.documentElement.dataset.scrollables === 'marked'"

# The step table the issue named: a `diagnose()` that found a fault and names its fix, scrolled to
# below the sticky header.
SHOW_DIAGNOSIS = """(() => { const t = [...document.querySelectorAll('article table')]
  .find(t => t.rows[0] && /seen.*fix/.test(t.rows[0].textContent)
             && [...t.rows].slice(1).some(r => r.cells[r.cells.length - 1].textContent.trim()));
  if (t) window.scrollTo(0, t.getBoundingClientRect().top + window.scrollY - 120); return true })()"""

# Records the scheme the page has when its content starts (after the header's inline scripts,
# before the theme's deferred bundle): what the reader sees first.
SCHEME_AT_CONTENT = """new MutationObserver((_, seen) => { if (document.querySelector('.md-container')) {
  window.helmSchemeAtContent = document.body.dataset.mdColorScheme; seen.disconnect() } })
  .observe(document, {childList: true, subtree: true})"""


def test_a_reader_whose_system_is_dark_gets_dark_pages(
    run: dict[str, Any], browser: Browser
) -> None:
    """The system's dark preference gives the dark scheme from the first paint (not a light page
    that the theme's script darkens later); the header's toggle is named for what it does, and the
    reader's choice outlasts the page and beats the system's preference."""
    browser.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])  # fmt: skip
    script = browser.call("Page.addScriptToEvaluateOnNewDocument", source=SCHEME_AT_CONTENT)
    try:
        with serve_directory(run["site"]) as origin:
            browser.goto(f"{origin}/runbooks/03-production-install/")
            browser.wait_for(SETTLED)
            assert browser.evaluate("window.helmSchemeAtContent") == "slate"
            assert browser.evaluate(SCHEME) == "slate"
            # the visible toggle and the chosen radio button (what the keyboard reaches; Enter
            # switches) are named for what they do
            toggle = browser.evaluate(
                f"[{TOGGLE}.title, document.querySelector('input[name=__palette]:checked').getAttribute('aria-label')]"
            )
            assert toggle == ["Switch to light mode", "Switch to light mode"]
            browser.switch_scheme("default")
            browser.goto(f"{origin}/")
            browser.wait_for(SETTLED)
            assert browser.evaluate("window.helmSchemeAtContent") == "default"
            assert browser.evaluate(f"{TOGGLE}.title") == "Switch to dark mode"
            browser.evaluate("localStorage.clear()")
    finally:
        browser.call("Page.removeScriptToEvaluateOnNewDocument", identifier=script["identifier"])
        browser.call("Emulation.setEmulatedMedia", features=[])


# 18 pages, each laid out and audited by axe-core in both schemes (1-3 s a page and scheme for a long
# runbook on 2 busy cores)
@pytest.mark.timeout(480)  # 124 s at 1400 px with a load average of 13
@pytest.mark.parametrize(
    ("width", "height"), [(1400, 900), (390, 844)], ids=["desktop-1400", "phone-390"]
)
def test_reference_and_runbook_pages_are_comfortable_to_read(
    run: dict[str, Any], browser: Browser, width: int, height: int
) -> None:
    """Identifiers are never broken across lines; at 1400 px the content column takes most of the
    window and every table shows every column; on a phone a wide table scrolls, nothing is cut
    and the edge where a table is cut fades ("scroll for more"), and the page itself does not
    scroll sideways; no text is under 12 px; and axe-core finds no
    violation of any impact on any page, in the light scheme and, switched with the header's
    toggle, in the dark one (issue 31)."""
    problems: dict[str, dict[str, Any]] = {}
    figures: dict[str, tuple[int, int]] = {}
    browser.viewport(width, height)
    try:
        with serve_directory(run["site"]) as origin:
            for name, path in READING_PAGES.items():
                browser.errors.clear()
                browser.goto(f"{origin}/{path}")
                browser.wait_for(SETTLED)
                page = browser.evaluate(LAYOUT)
                figures[name] = (page["article"], page["identifiers"])
                found = {
                    "not opened in the light scheme": browser.evaluate(SCHEME) != "default",
                    "script errors": list(browser.errors),  # Lighthouse's best practices count them
                    "broken identifiers": page["broken"],
                    "tables cut with no way to scroll": page["clipped"],
                    "tables cut with no fade at the cut edge": page["uncued"],
                    "page scrolls sideways (px)": page["sideways"] > 1 and page["sideways"],
                    "text under 12 px": page["small"],
                    "axe-core violations": browser.axe(),
                }
                if name in PROSE_PAGES:
                    del found["broken identifiers"]
                if name in KEYED_PAGES and page["keys"] == 0:
                    found["no key column found"] = True
                if width >= 1400:
                    found["tables not showing every column"] = page["hidden"]
                    found["content column narrower than 1000 px"] = (
                        page["article"] < 1000 and page["article"]
                    )
                if found := {problem: seen for problem, seen in found.items() if seen}:
                    problems[name] = found
                browser.evaluate(SHOW_DIAGNOSIS)
                browser.wait_for("document.getAnimations().length === 0")  # header title swap
                browser.screenshot(SCREENSHOTS / f"{name}-{width}.png")
                # The same page in the dark scheme: the toggle stores the choice, the page opens
                # again in it (axe reads computed styles, and Chromium leaves those of the cells
                # content-visibility skips as they were until they are drawn). Then back: the next
                # page opens light.
                browser.switch_scheme("slate")
                browser.errors.clear()
                browser.goto(f"{origin}/{path}")
                browser.wait_for(SETTLED)
                dark = {
                    "stored dark choice not kept": browser.evaluate(SCHEME) != "slate",
                    "script errors, dark scheme": list(browser.errors),
                    "axe-core violations, dark scheme": browser.axe(),
                }
                if dark := {problem: seen for problem, seen in dark.items() if seen}:
                    problems.setdefault(name, {}).update(dark)
                browser.evaluate(SHOW_DIAGNOSIS)
                browser.wait_for("document.getAnimations().length === 0")
                browser.screenshot(SCREENSHOTS / f"{name}-{width}-dark.png")
                browser.switch_scheme("default")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
    assert problems == {}, (
        f"at {width}x{height}: {problems}; (article width, identifiers checked): {figures}"
    )
