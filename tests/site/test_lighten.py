"""The theme's stylesheets trimmed to what the site uses: the palette keeps the schemes and colours
mkdocs.yml configures, and the custom properties another stylesheet reads."""

from __future__ import annotations

from pathlib import Path

from helm_runbook.site.lighten import _trim_theme_css

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
