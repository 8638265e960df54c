"""The chart's values reference, generated from ``values.yaml``'s ``# --`` comments.

One source for the docs: the chart README's values table, the docs site's reference page and the
values-doc test all come from here, so a key without a description cannot ship unnoticed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"
UNSUPPORTED_BEGIN, UNSUPPORTED_END = (
    "<!-- unsupported-values:begin -->",
    "<!-- unsupported-values:end -->",
)
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):")
_DOC = re.compile(r"^\s*# -- (.*)$")
_DEFAULT = re.compile(r"^\s*# @default -- (.*)$")


@dataclass(frozen=True)
class ValueDoc:
    key: str
    kind: str
    default: str
    description: str


def _comments(text: str) -> tuple[dict[str, str], dict[str, str]]:
    docs: dict[str, str] = {}
    defaults: dict[str, str] = {}
    stack: list[str] = []
    doc = default = None
    for line in text.splitlines():
        if m := _DOC.match(line):
            doc = m.group(1)
            continue
        if m := _DEFAULT.match(line):
            default = m.group(1)
            continue
        if m := _KEY.match(line):
            stack = [*stack[: len(m.group(1)) // 2], m.group(2)]
            if doc:
                docs[".".join(stack)] = doc
            if default:
                defaults[".".join(stack)] = default
            doc = default = None
    return docs, defaults


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out.extend(_leaves(item, f"{prefix}.{key}" if prefix else key))
        return out
    return [(prefix, value)]


def value_docs(values_file: Path) -> list[ValueDoc]:
    """Every leaf key with its type, default and description (empty when undocumented)."""
    text = values_file.read_text()
    docs, defaults = _comments(text)
    out = []
    for key, value in _leaves(yaml.safe_load(text)):
        kind = {
            bool: "bool",
            int: "int",
            float: "float",
            str: "string",
            list: "list",
            dict: "object",
        }.get(type(value), "null")
        default = defaults.get(key) or f"`{json.dumps(value)}`"
        # A documented parent (e.g. ingress.hosts) documents its list items.
        description = docs.get(key) or ""
        out.append(ValueDoc(key, kind, default, description))
    return out


def values_table(values_file: Path) -> str:
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for doc in value_docs(values_file):
        default, description = (text.replace("|", "\\|") for text in (doc.default, doc.description))
        rows.append(f"| `{doc.key}` | {doc.kind} | {default} | {description} |")
    return "\n".join(rows) + "\n"


def unsupported_table(chart: Path) -> str:
    """The upstream values this chart refuses when set (from the schema's ``x-unsupported``)."""
    from helm_runbook.chart.schema import unsupported_values

    rows = ["| Upstream value | Feature | What to do |", "| --- | --- | --- |"]
    for key, feature in unsupported_values(chart):
        rows.append(
            f"| `{key}.*` | {feature} | leave it unset, or deploy with the upstream chart |"
        )
    return "\n".join(rows) + "\n"


def _between(text: str, begin: str, end: str, body: str) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + body + text[stop:]


def render_readme(readme: Path, values_file: Path) -> str:
    """The README text with its generated tables (values, unsupported upstream values) regenerated."""
    text = _between(readme.read_text(), BEGIN, END, values_table(values_file))
    return _between(text, UNSUPPORTED_BEGIN, UNSUPPORTED_END, unsupported_table(values_file.parent))


def main() -> int:
    """Rewrite the chart README's values table in place."""
    from helm_runbook.chart import CHART_DIR

    readme = CHART_DIR / "README.md"
    readme.write_text(render_readme(readme, CHART_DIR / "values.yaml"))
    print(f"wrote the values table of {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
