"""Helm's ``values.schema.json`` refusals in operator words.

Helm prints a JSON pointer and the validator's keyword (``at '/helm': additional properties
'productoin' not allowed``). An operator writes ``--set helm.productoin=true``, so each refusal
is restated with the dotted path, the nearest valid key for a typo, the key's description and
the chart default. The chart README and the docs site's guard page show the same translation.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

UNSUPPORTED = "x-unsupported"  # schema keyword marking an upstream value this chart refuses
_SCHEMA_LINE = re.compile(r"^\s*- at '([^']*)': (.+)$", re.M)
_ADDITIONAL = re.compile(r"additional propert(?:y|ies) (.+) not allowed")
_NAME = re.compile(r"'([^']*)'")
_MAX_PROBLEMS = 50  # Helm's message is ours to parse; a hostile values file stays bounded


@dataclass(frozen=True)
class SchemaProblem:
    """One refused value: ``path`` dotted as in ``--set``, what is wrong, what to do."""

    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@lru_cache(maxsize=4)
def _load(chart: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = json.loads((chart / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    return schema, defaults


def dotted(pointer: str) -> str:
    """``/helm/auth/tenantID`` → ``helm.auth.tenantID``; array indices as ``[0]``."""
    out = ""
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "(top level)"


def _node(schema: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = schema
    for part in [p for p in pointer.strip("/").split("/") if p]:
        if not isinstance(node, dict):
            return {}
        if part.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return node if isinstance(node, dict) else {}


def _default(defaults: dict[str, Any], pointer: str) -> Any:
    node: Any = defaults
    for part in [p for p in pointer.strip("/").split("/") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _join(parent: str, key: str) -> str:
    return key if parent == "(top level)" else f"{parent}.{key}"


def _additional(schema: dict[str, Any], pointer: str, names: list[str]) -> list[SchemaProblem]:
    parent = dotted(pointer)
    known = list(_node(schema, pointer).get("properties", {}))
    out = []
    for name in names:
        lowered = {k.lower(): k for k in known}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        path = _join(parent, name)
        if close:
            guess = _join(parent, lowered[close[0]])
            out.append(SchemaProblem(path, f"is not a value of this chart; did you mean {guess}?",
                                     f"rename it to {guess}"))  # fmt: skip
        else:
            where = f"under {parent} " if parent != "(top level)" else "at the top level "
            out.append(SchemaProblem(
                path, f"is not a value of this chart (the keys {where}are {', '.join(known)})",
                f"remove {path}; the chart README's values table lists every value"))  # fmt: skip
    return out


def _restated(keyword_text: str, node: dict[str, Any]) -> str:
    text = keyword_text
    if text.startswith("minLength: got 0"):
        return "must not be empty"
    if m := re.match(r"'(.*)' does not match pattern '(.*)'$", text):
        return f"{m.group(1)!r} does not have the required form (pattern {m.group(2)})"
    if text.startswith("value must be one of") and node.get("enum"):
        return "must be one of " + ", ".join(str(v) for v in node["enum"])
    return text


def explain(helm_message: str, chart: Path) -> list[SchemaProblem]:
    """Each ``- at '<pointer>': <why>`` line of Helm's schema refusal, restated."""
    schema, defaults = _load(chart)
    out: list[SchemaProblem] = []
    for pointer, why in _SCHEMA_LINE.findall(helm_message)[:_MAX_PROBLEMS]:
        if m := _ADDITIONAL.search(why):
            out.extend(_additional(schema, pointer, _NAME.findall(m.group(1))))
            continue
        node = _node(schema, pointer)
        path = dotted(pointer)
        default = _default(defaults, pointer)
        fix = f"set {path} as described: {node.get('description', 'see the chart README values table')}"
        if default not in (None, "", [], {}):
            fix += f" The chart default is {json.dumps(default)}."
        out.append(SchemaProblem(path, _restated(why, node), fix))
    return out


def unsupported_values(chart: Path) -> list[tuple[str, str]]:
    """Upstream chart values this chart refuses when set: (dotted key, feature)."""
    schema, _ = _load(chart)
    out: list[tuple[str, str]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, child in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(child, dict) and UNSUPPORTED in child:
                out.append((path, str(child[UNSUPPORTED])))
            elif isinstance(child, dict):
                walk(child, path)

    walk(schema, "")
    return out
