"""The built site made light and self-contained: what ``mkdocs build`` leaves that no reader needs.

mkdocs-jupyter inlines JupyterLab's whole stylesheet (about 580 KB) into every runbook page, plus
a script that imports mermaid from a CDN when a page has a mermaid cell (none has; it would break
the offline promise the day one did), MathJax's configuration (no runbook has maths) and a
stylesheet that is a printed Python list. mkdocs-material ships source maps and the search
word-segmenters of languages this site is not written in. ``lighten`` moves the notebook styles
into one shared stylesheet trimmed to the selectors the pages use, drops the rest, gives the
search dialog its accessible name, and makes the search index wait for the reader's first search.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import tinycss2

from helm_runbook.errors import StepFailed

NOTEBOOK_CSS = (
    "assets/stylesheets/notebook"  # + ".<hash>.css": a new build never reads a stale copy
)
_STYLE = re.compile(r"\s*<style(?: type=\"text/css\")?>(.*?)</style>", re.S)
# What mkdocs-jupyter puts before and after a notebook: its inline styles sit between the opening
# of the article and the first cell, and after the notebook's closing comment.
_NOTEBOOK = re.compile(r"<div class=\"jupyter-wrapper\">")
_DROPPED_SCRIPTS = (
    re.compile(r"<script src=\"\">\s*</script>"),  # include_requirejs: false leaves an empty src
    re.compile(r"<script type=\"text/x-mathjax-config\">.*?</script>", re.S),
    re.compile(
        r"<script type=\"module\">\s*document\.addEventListener\(\"DOMContentLoaded\", async \(\) => \{\s*"
        r"const diagrams = document\.querySelectorAll\(\"\.jp-Mermaid.*?</script>",
        re.S,
    ),
)
# Each code cell's copy button carries the same 800-byte icon: one <symbol> per page instead.
_COPY_ICON = re.compile(
    r'<svg aria-hidden="true" class="clipboard-copy-icon"[^>]*>\s*(<path .*?</path>\s*<path .*?</path>)\s*</svg>',
    re.S,
)
# JupyterLab's click-to-collapse bars: empty boxes on a static page (about 6 KB on a long runbook)
_COLLAPSER = re.compile(r'<div class="jp-Collapser [^"]*">\s*</div>\n?')
# The theme's script and ours run once the page is parsed (they read the whole DOM anyway): the
# first paint does not wait for 110 KB of script.
_SCRIPT_SRC = re.compile(r"<script (src=\"[^\"]+\.js\")>")
# An icon (pymdownx.emoji's inline SVG) repeated on a page: one <symbol>, each use a reference.
_ICON = re.compile(
    r'(<span class="twemoji[^"]*">)<svg xmlns="http://www.w3.org/2000/svg" viewBox="([^"]+)">(.*?)</svg>',
    re.S,
)
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
_SEARCH_DIALOG = '<div class="md-search" data-md-component="search" role="dialog">'
# The version selector's button (inserted by the theme's script) is labelled "Select version"
# while it shows the version: a name that leaves out its own text (axe-core's
# label-content-name-mismatch). With an empty label the button is named by the version it shows.
_VERSION_LABEL = '"select.version": "Select version"'
# mkdocs-material moves every plain table into a scrolling wrapper once its script runs: the
# table is painted again, seconds after the first paint on a phone, and counts as the page's
# largest paint then (Lighthouse: guards 86, security 87). The wrapper is written at build time
# and the theme's script told to leave wrapped tables alone.
_PLAIN_TABLE = re.compile(r"<table>(?:(?!<table\b).)*?</table>", re.S)
_TABLE_WRAP = '<div class="md-typeset__scrollwrap"><div class="md-typeset__table">'
# A page's first tables are laid out with the page; later ones ("helm-lazy", layout.css) only near
# the window. A skipped table near the top took its real height after the first paint and moved
# what followed it (the guards page's layout shift: 0.11 with every table lazy).
_EAGER_TABLES = 2
_THEME_TABLES = re.compile(re.escape('"table:not([class])"'))
_THEME_TABLES_UNWRAPPED = '":not(.md-typeset__table)>table:not([class])"'
# The search index (about 250 KB, half a runbook page's weight) is fetched by every page at load,
# whether or not the reader searches: the search worker asks for it at once unless the page is a
# file:// one, and search.highlight subscribes to it on every page. The worker is made to wait for
# the search dialog to open, as it does under file://, and the highlighter asks only on a page
# opened from a search result (its ``?h=`` parameter); both share one request.
_THEME_SEARCH_AT_LOAD = re.compile(re.escape('$(location.protocol!=="file:")'))
_THEME_SEARCH_ON_OPEN = "$(!1)"
_THEME_HIGHLIGHT_INDEX = re.compile(
    r'("search\.highlight"\)\?\w+\(e,\{index\$:)(\w+)(,location\$:)'
)
_THEME_HIGHLIGHT_ON_RESULT = (
    r'\1new URLSearchParams(location.search).has("h")?\2:new Promise(()=>{})\3'
)
# (what it is, the pattern it must match once, its replacement, the name to update when it fails)
_THEME_SCRIPT_PATCHES = (
    ("table selector", _THEME_TABLES, _THEME_TABLES_UNWRAPPED, "_THEME_TABLES"),
    ("search worker's index request", _THEME_SEARCH_AT_LOAD, _THEME_SEARCH_ON_OPEN, "_THEME_SEARCH_AT_LOAD"),
    ("search highlighter's index", _THEME_HIGHLIGHT_INDEX, _THEME_HIGHLIGHT_ON_RESULT, "_THEME_HIGHLIGHT_INDEX"),
)  # fmt: skip
# A chart a step drew (runbook 09's burst: 57 KB of PNG, 76 KB as base64) was inlined in the page as a
# data: URI, so every reader downloaded it with the page's text before the first paint, though it sits
# far below the fold. Pictures past this size become files of their own, loaded when scrolled near;
# their width and height stay in the tag, so the page keeps its layout while they load.
_INLINE_IMAGE_MAX = 4096
_DATA_PNG = re.compile(r'<img ([^>]*?)src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"([^>]*)>')
_IMAGES = "assets/images"  # where _png_as_file writes the pictures it takes out of pages
_CLASS_ATTR = re.compile(r"""\bclass=["']([^"']*)["']""")
_CLASS = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
_NOT = re.compile(r":(?:not|where|is|has)\([^()]*\)")


def lighten(site: Path) -> dict[str, int]:
    """Finish ``site`` in place; returns bytes before and after (HTML, CSS, JS, maps) for the log."""
    before = _weight(site)
    _drop_unread_assets(site)
    _patch_theme_script(site)
    pages = sorted(site.rglob("*.html"))
    texts = {page: page.read_text() for page in pages}
    notebook_pages = [p for p, t in texts.items() if _NOTEBOOK.search(t)]
    blocks: list[str] = []
    for page in notebook_pages:
        texts[page] = _lift_notebook_styles(texts[page], blocks)
    _trim_theme_css(
        site, [*texts.values(), *blocks]
    )  # blocks: the notebook styles read theme variables
    stylesheet = ""
    if blocks:
        used = _classes(texts[p] for p in notebook_pages)
        css = trim_css("\n".join(blocks), used)
        digest = hashlib.sha256(css.encode()).hexdigest()[:8]
        stylesheet = f"{NOTEBOOK_CSS}.{digest}.css"
        (site / stylesheet).write_text(css)
    for page, text in texts.items():
        if page in notebook_pages:
            href = os.path.relpath(site / stylesheet, page.parent)
            # after the theme's stylesheet, before the site's own (layout.css has the last word)
            theme = re.search(
                r'<link rel="stylesheet" href="[^"]*assets/stylesheets/main\.[^"]+\.css">', text
            )
            at = theme.end() if theme else text.index("</head>")
            text = f'{text[:at]}\n<link rel="stylesheet" href="{href}">{text[at:]}'
        if _SEARCH_DIALOG in text:
            text = text.replace(_SEARCH_DIALOG, _SEARCH_DIALOG[:-1] + ' aria-label="Search">', 1)
        elif 'data-md-component="search"' in text:
            raise StepFailed("docs.lighten", expected=f"mkdocs-material's search dialog as {_SEARCH_DIALOG}",
                             seen=f"another markup in {page.relative_to(site)}",
                             fix="update _SEARCH_DIALOG in helm_runbook/site/lighten.py to the theme's markup")  # fmt: skip
        text = text.replace(_VERSION_LABEL, '"select.version": ""', 1)
        text = _SCRIPT_SRC.sub(r"<script defer \1>", text)
        text = _wrap_tables(text)
        text = _DATA_PNG.sub(functools.partial(_png_as_file, site=site, page=page), text)
        page.write_text(_indentation_dropped(_shared_icons(text)))
    return {"before": before, "after": _weight(site)}


def _wrap_tables(text: str) -> str:
    """Each plain table in its scroll wrapper, as the theme's script would put it (see
    ``_PLAIN_TABLE``); from the ``_EAGER_TABLES``-th table on, inside a "helm-lazy" box."""
    count = itertools.count()

    def wrap(match: re.Match[str]) -> str:
        wrapped = f"{_TABLE_WRAP}{match.group(0)}</div></div>"
        return wrapped if next(count) < _EAGER_TABLES else f'<div class="helm-lazy">{wrapped}</div>'

    return _PLAIN_TABLE.sub(wrap, text)


def _png_as_file(match: re.Match[str], *, site: Path, page: Path) -> str:
    """A large inline PNG (see ``_INLINE_IMAGE_MAX``) as a lazily loaded file named by its digest."""
    before, data, after = match.groups()
    try:
        png = base64.b64decode(data, validate=False)
    except binascii.Error:
        return match.group(0)
    if len(png) <= _INLINE_IMAGE_MAX or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return match.group(0)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    name = f"{_IMAGES}/{hashlib.sha256(png).hexdigest()[:16]}.png"
    (site / name).parent.mkdir(parents=True, exist_ok=True)
    (site / name).write_bytes(png)
    src = os.path.relpath(site / name, page.parent)
    attrs = re.sub(r'\s*\b(?:width|height|loading|decoding)="[^"]*"', "", f"{before}{after}")
    # nbconvert writes <img ... />
    attrs = " ".join(attrs.split()).removesuffix("/").rstrip()
    return (f'<img {attrs} src="{src}" width="{width}" height="{height}" loading="lazy" '
            'decoding="async">')  # fmt: skip


def _shared_icons(text: str) -> str:
    symbols: dict[tuple[str, str], str] = {}

    def use(m: re.Match[str]) -> str:
        ident = symbols.setdefault((m.group(2), m.group(3)), f"helm-icon-{len(symbols)}")
        return f'{m.group(1)}<svg viewBox="{m.group(2)}" aria-hidden="true"><use href="#{ident}"></use></svg>'

    text = _ICON.sub(use, text)
    if not symbols:
        return text
    defs = "".join(
        f'<symbol id="{ident}" viewBox="{box}">{body}</symbol>'
        for (box, body), ident in symbols.items()
    )
    body = re.search(r"<body[^>]*>", text)
    assert body is not None
    sprite = f'<svg aria-hidden="true" style="position:absolute;width:0;height:0;overflow:hidden" xmlns="http://www.w3.org/2000/svg">{defs}</svg>'
    return text[: body.end()] + sprite + text[body.end() :]


def _indentation_dropped(text: str) -> str:
    """The page without the indentation between its tags (outside ``<pre>``): a line break stays
    where there was one, so what renders is the same."""
    parts = _PRE.split(text)
    return "".join(
        part if i % 2 else re.sub(r"\n[ \t]+", "\n", part) for i, part in enumerate(parts)
    )


def _lift_notebook_styles(text: str, blocks: list[str]) -> str:
    """The page without its inline notebook styles and scripts; each distinct style goes to ``blocks``."""
    start = _NOTEBOOK.search(text)
    assert start is not None
    # The styles come before the wrapper (the article's top) and after it (the list mkdocs-jupyter
    # prints); both are inside the article, after the theme's own head.
    article = text.index("<article")
    out, last = [], 0
    for match in _STYLE.finditer(text, article):
        css = match.group(1).strip()
        if not css.startswith("['") and css not in blocks:  # the printed list is not CSS
            blocks.append(css)
        out.append(text[last : match.start()])
        last = match.end()
    out.append(text[last:])
    text = "".join(out)
    for script in _DROPPED_SCRIPTS:
        text = script.sub("", text)
    icon = _COPY_ICON.search(text)
    if icon:
        text = _COPY_ICON.sub('<svg aria-hidden="true" class="clipboard-copy-icon" height="20" width="20">'
                              '<use href="#helm-copy-icon"></use></svg>', text)  # fmt: skip
        symbol = (f'<svg aria-hidden="true" style="position:absolute;width:0;height:0;overflow:hidden"><symbol id="helm-copy-icon" viewBox="0 0 16 16">'
                  f"{icon.group(1)}</symbol></svg>")  # fmt: skip
        text = text.replace(start.group(0), start.group(0) + symbol, 1)
    return text.replace(
        '<clipboard-copy ,="" ', "<clipboard-copy "
    )  # a stray comma in the template


def _classes(texts: Iterable[str]) -> set[str]:
    return {name for text in texts for attr in _CLASS_ATTR.findall(text) for name in attr.split()}


_ROOT_INSIDE = re.compile(r"\S\s+(?::root|html|body)\b")  # `.jupyter-wrapper :root` matches nothing


# The theme's palette stylesheet styles every scheme, primary and accent colour it offers (12 KB,
# render-blocking); a page names the ones the site configures (mkdocs.yml's palette) on its body
# and on the toggle's inputs, as data-md-color-<kind>="<value>". A rule for another one is dropped.
_PALETTE_SELECTOR = re.compile(r"""\[data-md-color-(scheme|primary|accent)=["']?([\w-]+)["']?\]""")
_PALETTE_ATTR = re.compile(r"""\bdata-md-color-(scheme|primary|accent)=["']([\w-]+)["']""")


def _palette(texts: Iterable[str]) -> set[str]:
    """The palette values the pages name, as ``palette:<kind>=<value>`` (never a class name)."""
    return {
        f"palette:{kind}={value}" for text in texts for kind, value in _PALETTE_ATTR.findall(text)
    }


def _selector_used(selector: str, used: set[str], theme: bool) -> bool:
    if _ROOT_INSIDE.search(selector):
        return False
    if theme and not all(
        f"palette:{kind}={value}" in used for kind, value in _PALETTE_SELECTOR.findall(selector)
    ):
        return False
    # mkdocs-material adds some of its classes at run time (md-typeset__scrollwrap around tables):
    # the notebook styles keep every rule on them; the theme's own are checked against its script
    names = _CLASS.findall(_NOT.sub("", selector))
    return all(name in used or (not theme and name.startswith("md-")) for name in names)


def _split_selectors(prelude: str) -> list[str]:
    out, depth, current = [], 0, ""
    for char in prelude:
        depth += (char in "([" and 1) or (char in ")]" and -1) or 0
        if char == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += char
    return [*out, current.strip()]


def trim_css(
    css: str, used: set[str], theme: bool = False, read: frozenset[str] = frozenset()
) -> str:
    """``css`` with only the rules whose selectors can match an element with classes from ``used``
    (a selector naming a class no page has is dropped; ``theme``: no class is presumed added at run
    time), identical rules once, and without the custom properties (``--jp-…``) that no ``var()``
    reads, here or in ``read`` (other stylesheets and the pages), repeated until none is left (a
    dropped property may have been the only reader of another). At-rules are trimmed inside."""
    unread: frozenset[str] | None = None  # the first pass drops rules, the next ones properties
    while True:
        parsed = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
        trimmed = "\n".join(dict.fromkeys(_trim(parsed, used, theme, unread)))
        if trimmed == css and unread is not None:
            return css
        css = trimmed
        defined = set(_PROPERTY.findall(css))
        unread = frozenset(defined - set(_VAR.findall(css)) - read)


_VAR = re.compile(r"var\(\s*(--[\w-]+)")
_PROPERTY = re.compile(r"[{;]\s*(--[\w-]+)\s*:")


def _declarations(content: list[object], unread: frozenset[str] | None) -> str:
    if unread is None:
        return str(tinycss2.serialize(content)).strip()
    kept = []
    for decl in tinycss2.parse_declaration_list(content, skip_comments=True, skip_whitespace=True):
        if decl.type != "declaration" or decl.name in unread:
            continue
        important = " !important" if decl.important else ""
        kept.append(f"{decl.name}:{tinycss2.serialize(decl.value).strip()}{important}")
    return ";".join(kept)


def _trim(
    rules: list[object], used: set[str], theme: bool, unread: frozenset[str] | None
) -> list[str]:
    out: list[str] = []
    for rule in rules:
        if rule.type == "qualified-rule":  # type: ignore[attr-defined]
            prelude = tinycss2.serialize(rule.prelude)  # type: ignore[attr-defined]
            kept = [s for s in _split_selectors(prelude) if _selector_used(s, used, theme)]
            body = _declarations(rule.content, unread) if kept else ""  # type: ignore[attr-defined]
            if body:
                out.append(f"{','.join(kept)}{{{body}}}")
        elif rule.type == "at-rule":  # type: ignore[attr-defined]
            keyword = rule.lower_at_keyword  # type: ignore[attr-defined]
            if keyword == "charset":
                continue
            prelude = tinycss2.serialize(rule.prelude).strip()  # type: ignore[attr-defined]
            if keyword in ("media", "supports") and rule.content is not None:  # type: ignore[attr-defined]
                inner = _trim(tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True), used, theme, unread)  # type: ignore[attr-defined]  # fmt: skip
                if inner:
                    out.append(f"@{keyword} {prelude}{{{''.join(inner)}}}")
            else:
                out.append(tinycss2.serialize([rule]).strip())
    return out


def _trim_theme_css(site: Path, pages: Iterable[str]) -> None:
    """mkdocs-material's stylesheet (about 135 KB, every feature of the theme) trimmed to the rules
    whose classes some page has or the theme's script names (classes it adds at run time), and its
    palette stylesheet to the schemes and colours the pages name."""
    pages = list(pages)
    script = " ".join(p.read_text() for p in (site / "assets" / "javascripts").glob("bundle.*.js"))
    used = _classes(pages) | set(re.findall(r"[A-Za-z_][\w-]*", script)) | _palette(pages)
    styles = site / "assets" / "stylesheets"
    theme = [*styles.glob("main.*.css"), *styles.glob("palette.*.css")]
    styles_text = {p: p.read_text() for p in site.rglob("*.css")}
    # a custom property stays while another stylesheet, a page or the theme's script reads it
    for path in theme:
        others = [text for other, text in styles_text.items() if other != path]
        read = frozenset(_VAR.findall(" ".join([*others, *pages, script])))
        path.write_text(trim_css(styles_text[path], used, theme=True, read=read))


def _patch_theme_script(site: Path) -> None:
    """Apply ``_THEME_SCRIPT_PATCHES`` to the theme's bundle: each must match exactly once, so a
    theme upgrade that moved one fails the build naming it instead of silently undoing it."""
    for bundle in (site / "assets" / "javascripts").glob("bundle.*.js"):
        text = bundle.read_text()
        for what, pattern, replacement, name in _THEME_SCRIPT_PATCHES:
            text, found = pattern.subn(replacement, text)
            if found != 1:
                raise StepFailed("docs.lighten", expected=f"mkdocs-material's {what} ({pattern.pattern}) once in its script",
                                 seen=f"{found} in {bundle.name}",
                                 fix=f"update {name} in helm_runbook/site/lighten.py to the theme's script")  # fmt: skip
        bundle.write_text(text)


def _drop_unread_assets(site: Path) -> None:
    """Source maps (and the comments naming them) and the search language packs of other languages."""
    for path in site.rglob("*.map"):
        path.unlink()
    for path in [*site.rglob("*.js"), *site.rglob("*.css")]:
        text = path.read_text()
        trimmed = re.sub(r"\n?/[/*]# sourceMappingURL=\S+?(?: \*/)?\s*$", "", text)
        if trimmed != text:
            path.write_text(trimmed)
    shutil.rmtree(site / "assets" / "javascripts" / "lunr", ignore_errors=True)
    _lighter_search_index(site / "search" / "search_index.json")


def _lighter_search_index(path: Path) -> None:
    """The search index a reader's first search fetches (about 250 KB): each entry's text without
    its markup (a tenth of it; results show the words, which is what is searched), compactly."""
    if not path.exists():
        return
    index = json.loads(path.read_text())
    for doc in index.get("docs", []):
        doc["text"] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", doc.get("text", ""))).strip()
    path.write_text(json.dumps(index, ensure_ascii=False, separators=(",", ":")))


def _weight(site: Path) -> int:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
