"""Markdown helpers every generated page shares: a table cell, an identifier the site never
breaks inside."""

from __future__ import annotations

import html
import re


def md_cell(text: object) -> str:
    """``text`` safe inside a Markdown table cell (no column break, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


# The marks that start markup inside a line: code, emphasis, attribute lists, links and images, and
# `|`, the tables extension's column break (Python-Markdown's backslash escapes all of them)
_MARKDOWN = re.compile(r"([\\`*_{}\[\]!|])")


def md_text(text: object) -> str:
    """Text someone else wrote (a run's parameter, a skipped step's reason, a target name) as
    inert Markdown: HTML escaped, every Markdown mark backslash-escaped, one line; safe in a table
    cell too. It reads as it was written and never becomes a tag, a link or a code span."""
    escaped = html.escape(str(text), quote=False).replace("\r", " ").replace("\n", " ")
    return _MARKDOWN.sub(r"\\\1", escaped)


# Status marks: the theme's own icons as inline SVG (pymdownx.emoji, mkdocs.yml), coloured by
# docs/stylesheets/layout.css; the word beside each says the same for screen readers.
ICONS = {
    "passed": ":material-check-circle:{ .helm-ok }",
    "failed": ":material-close-circle:{ .helm-failed }",
    "skipped": ":material-skip-next-circle:{ .helm-skipped }",
}


def status_mark(kind: str, words: str = "") -> str:
    """``kind`` (passed, failed, skipped) as its icon followed by ``words`` (default: ``kind``)."""
    return f"{ICONS[kind]} {words or kind}"


IDENTIFIER_CLASS = "helm-identifier"
CODE_SPAN = re.compile(r"`([^`]+)`")


def identifier(name: str) -> str:
    """A value path, variable, route, operation or step name as code the site never breaks inside
    (``code.helm-identifier`` in docs/stylesheets/layout.css; attr_list sets the class). A name
    that could end the code span (a backtick) or the line is written as escaped HTML instead."""
    if "`" in name or "\n" in name or "|" in name:
        return f'<code class="{IDENTIFIER_CLASS}">{md_text(name)}</code>'
    return f"`{name}`{{.{IDENTIFIER_CLASS}}}"


def identifiers(text: str) -> str:
    """Every code span of ``text`` (``when `helm.proxy.enabled` ``) marked as an identifier."""
    return CODE_SPAN.sub(lambda m: identifier(m.group(1)), text)
