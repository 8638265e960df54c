"""Building chart values in Python: deep merges (as Helm coalesces ``-f`` layers) and dotted keys."""

from __future__ import annotations

import copy
from typing import Any


def merge_values(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win, maps merge key by key; inputs are never modified."""
    out: dict[str, Any] = {}
    for layer in layers:
        _merge_into(out, copy.deepcopy(layer))
    return out


def _merge_into(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``, keeping Python types (unlike ``--set``)."""
    out: dict[str, Any] = {}
    for path, value in dotted.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
