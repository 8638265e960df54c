"""The theme's stylesheets trimmed to what the site uses: the palette keeps the schemes and colours
mkdocs.yml configures, and the custom properties another stylesheet reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook.errors import StepFailed
from helm_runbook.site.lighten import _trim_theme_css, lighten

PALETTE = """@media screen{[data-md-color-scheme=slate]{color-scheme:dark;--md-default-bg-color:#1e2129;--md-unread:1}
[data-md-color-scheme=slate][data-md-color-primary=indigo]{--md-typeset-a-color:#5488e8}
[data-md-color-scheme=slate][data-md-color-primary=red]{--md-typeset-a-color:#f00}}
[data-md-color-primary=indigo]{--md-primary-fg-color:#4051b5}
[data-md-color-primary=red]{--md-primary-fg-color:#ef5552}
[data-md-color-accent=pink],[data-md-color-accent=indigo]{--md-accent-fg-color:#526cfe}"""
MAIN = (
    ".md-typeset{color:var(--md-default-bg-color);background:var(--md-primary-fg-color);border-color:var(--md-accent-fg-color)}\n"
    "a{color:var(--md-typeset-a-color)}"
)
# The theme script's fragments ``lighten`` patches, as mkdocs-material 9.8's bundle has them.
SEARCH_AT_LOAD = (
    'function Ei(e,t){return L($(location.protocol!=="file:"),Je("search")).pipe(b(()=>t))}'
)
HIGHLIGHT = '...me("content").map(e=>V("search.highlight")?Ai(e,{index$:zi,location$:Kt}):y)'
PAGE = """<body data-md-color-scheme="default" data-md-color-primary="indigo" data-md-color-accent="indigo">
<input class="md-option" data-md-color-media="(prefers-color-scheme: dark)" data-md-color-scheme="slate"
 data-md-color-primary="indigo" data-md-color-accent="indigo"><div class="md-typeset"></div>"""


def test_the_palette_keeps_the_configured_schemes_and_colours_only(tmp_path: Path) -> None:
    styles = tmp_path / "assets" / "stylesheets"
    styles.mkdir(parents=True)
    (tmp_path / "assets" / "javascripts").mkdir()
    (styles / "palette.x.min.css").write_text(PALETTE)
    (styles / "main.x.min.css").write_text(MAIN)
    _trim_theme_css(tmp_path, [PAGE])
    palette = (styles / "palette.x.min.css").read_text()
    # the dark scheme, indigo and what main.css reads stay
    assert (
        "[data-md-color-scheme=slate]{color-scheme:dark;--md-default-bg-color:#1e2129}" in palette
    )
    assert "[data-md-color-scheme=slate][data-md-color-primary=indigo]" in palette
    assert "--md-primary-fg-color:#4051b5" in palette
    assert "[data-md-color-accent=indigo]{--md-accent-fg-color:#526cfe}" in palette
    # colours no page names go, and properties nothing reads
    assert "red" not in palette and "pink" not in palette and "#ef5552" not in palette
    assert "--md-unread" not in palette
    # main.css is trimmed against the palette's reads as before: nothing of it is lost
    assert (styles / "main.x.min.css").read_text() == MAIN


def test_plain_tables_are_wrapped_at_build_time_and_the_theme_leaves_them_alone(
    tmp_path: Path,
) -> None:
    """The theme's script moved each plain table into its scrolling wrapper after the first paint,
    so the table was the page's late largest paint (Lighthouse mobile: guards 86 -> 98)."""
    scripts = tmp_path / "assets" / "javascripts"
    scripts.mkdir(parents=True)
    bundle = scripts / "bundle.0.min.js"
    bundle.write_text(
        'M("pre",e),...M("table:not([class])",e).map(i=>ti(i)),M("a",e);'
        + SEARCH_AT_LOAD
        + HIGHLIGHT
    )
    page = tmp_path / "index.html"
    page.write_text(
        "<article><table>\n<tr><td>a</td></tr></table><pre>&lt;table&gt;</pre>"
        '<table class="dataframe"><tr><td>b</td></tr></table></article>'
    )
    lighten(tmp_path)
    text = page.read_text()
    assert (
        text.count('<div class="md-typeset__scrollwrap"><div class="md-typeset__table"><table>')
        == 1
    )
    assert "</table></div></div><pre>" in text  # closed right after its own table
    assert '<table class="dataframe">' in text and text.count("md-typeset__scrollwrap") == 1
    assert '":not(.md-typeset__table)>table:not([class])"' in bundle.read_text()
    # the page's third plain table on is laid out only near the window (layout.css: helm-lazy)
    page.write_text("<table><tr><td>x</td></tr></table>" * 4)
    bundle.write_text('M("table:not([class])",e);' + SEARCH_AT_LOAD + HIGHLIGHT)  # unpatched
    lighten(tmp_path)
    text = page.read_text()
    assert text.count('<div class="md-typeset__scrollwrap">') == 4
    assert text.count('<div class="helm-lazy"><div class="md-typeset__scrollwrap">') == 2
    assert text.endswith("</table></div></div></div>")


def test_a_theme_whose_script_names_tables_otherwise_fails_the_build(tmp_path: Path) -> None:
    scripts = tmp_path / "assets" / "javascripts"
    scripts.mkdir(parents=True)
    (scripts / "bundle.0.min.js").write_text(
        'M("table.plain",e).map(i=>ti(i));' + SEARCH_AT_LOAD + HIGHLIGHT
    )
    with pytest.raises(StepFailed, match="table selector") as failed:
        lighten(tmp_path)
    assert "_THEME_TABLES" in failed.value.fix


def test_the_search_index_waits_for_the_first_search(tmp_path: Path) -> None:
    """Every page fetched the 250 KB index at load (runbooks 07 and 09: 619 and 613 KB transferred,
    over the 600 KB bar); the worker now asks when the dialog opens, the highlighter only on a page
    opened from a search result."""
    scripts = tmp_path / "assets" / "javascripts"
    scripts.mkdir(parents=True)
    bundle = scripts / "bundle.0.min.js"
    bundle.write_text('M("table:not([class])",e);' + SEARCH_AT_LOAD + HIGHLIGHT)
    lighten(tmp_path)
    text = bundle.read_text()
    assert 'return L($(!1),Je("search"))' in text and "location.protocol" not in text
    assert (
        'Ai(e,{index$:new URLSearchParams(location.search).has("h")?zi:new Promise(()=>{}),'
        "location$:Kt})" in text
    )


@pytest.mark.parametrize(
    ("fragment", "name"),
    [(SEARCH_AT_LOAD, "_THEME_SEARCH_AT_LOAD"), (HIGHLIGHT, "_THEME_HIGHLIGHT_INDEX")],
)
def test_a_theme_whose_search_script_moved_fails_the_build(
    tmp_path: Path, fragment: str, name: str
) -> None:
    scripts = tmp_path / "assets" / "javascripts"
    scripts.mkdir(parents=True)
    rest = (SEARCH_AT_LOAD + HIGHLIGHT).replace(fragment, "")
    (scripts / "bundle.0.min.js").write_text('M("table:not([class])",e);' + rest)
    with pytest.raises(StepFailed, match="once in its script") as failed:
        lighten(tmp_path)
    assert name in failed.value.fix and "0 in bundle.0.min.js" in failed.value.seen


def test_a_large_inline_picture_becomes_a_lazy_file_and_a_small_one_stays(tmp_path: Path) -> None:
    """Runbook 09's chart was 76 KB of base64 in the page's HTML, before the first paint."""
    import base64
    import struct
    import zlib

    def png(width: int, height: int, payload: bytes) -> bytes:
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + b"\0\0\0\0"  # noqa: E731
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload, 0))
        )

    big, small = png(768, 499, bytes(range(256)) * 40), png(2, 2, b"")
    scripts = tmp_path / "assets" / "javascripts"
    scripts.mkdir(parents=True)
    (scripts / "bundle.0.min.js").write_text(
        'M("table:not([class])",e);' + SEARCH_AT_LOAD + HIGHLIGHT
    )
    page = tmp_path / "runbooks" / "09" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        f'<p><img alt="decisions/s &amp; latency" src="data:image/png;base64,{base64.b64encode(big).decode()}"/></p>'
        f'<img alt="dot" src="data:image/png;base64,{base64.b64encode(small).decode()}">'
    )
    lighten(tmp_path)
    text = page.read_text()
    [image] = (tmp_path / "assets" / "images").iterdir()
    assert image.read_bytes() == big
    assert (
        f'<img alt="decisions/s &amp; latency" src="../../assets/images/{image.name}" width="768" '
        'height="499" loading="lazy" decoding="async">' in text
    )
    assert text.count("data:image/png;base64,") == 1 and 'alt="dot"' in text
