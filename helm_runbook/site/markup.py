"""Markdown helpers every generated page shares: a table cell, an identifier the site never
breaks inside."""

from __future__ import annotations

import re


def md_cell(text: object) -> str:
    """``text`` safe inside a Markdown table cell (no column break, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


IDENTIFIER_CLASS = "helm-identifier"
CODE_SPAN = re.compile(r"`([^`]+)`")


def identifier(name: str) -> str:
    """A value path, variable, route, operation or step name as code the site never breaks inside
    (``code.helm-identifier`` in docs/stylesheets/layout.css; attr_list sets the class)."""
    return f"`{name}`{{.{IDENTIFIER_CLASS}}}"


def identifiers(text: str) -> str:
    """Every code span of ``text`` (``when `helm.proxy.enabled` ``) marked as an identifier."""
    return CODE_SPAN.sub(lambda m: identifier(m.group(1)), text)
