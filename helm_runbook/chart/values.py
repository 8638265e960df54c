"""Building chart values in Python: deep merges (as Helm coalesces ``-f`` layers) and dotted keys."""

from __future__ import annotations

import copy
import json
import re
import shlex
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


#: values.yaml's helm.proxy.upstream, as upstream's chart ships it: production renders with it
#: (upstream's CI and the guide do), and NOTES, ``diagnose()`` and ``smoke`` name it instead.
PLACEHOLDER_UPSTREAM = "https://your-upstream.example/v1"


def is_placeholder_upstream(url: str) -> bool:
    """True for the chart's placeholder upstream host (any path or scheme spelling)."""
    return "your-upstream.example" in url.lower()


# Values that hold key material: an equivalent command shows a placeholder, never the value.
SECRET_VALUES = frozenset({
    "helm.signing.key", "helm.auth.adminAPIKey", "helm.auth.serviceAPIKey",
    "helm.storage.postgres.password", "helm.policy.source.controlplane.auth.bearerToken",
    "postgresql.auth.password",
})  # fmt: skip
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@-]+$")  # safe for --set without escaping or type guessing


def _flags(value: Any, path: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [
            flag
            for key, item in value.items()
            for flag in _flags(item, f"{path}.{key}" if path else key)
        ]
    if path in SECRET_VALUES and value:
        return ["--set", f"{path}=<{path.rsplit('.', 1)[-1]}: a secret, not shown>"]
    if isinstance(value, int):  # bool included
        return ["--set", f"{path}={json.dumps(value)}"]
    if isinstance(value, str) and _PLAIN.match(value) and value not in ("true", "false", "null") \
            and not re.match(r"^[0-9.eE+-]+$", value):  # fmt: skip
        return ["--set", f"{path}={value}"]
    return ["--set-json", f"{path}={json.dumps(value, separators=(',', ':'))}"]


def helm_command(values: dict[str, Any], *, release: str = "helm-ai-kernel", namespace: str = "",
                 chart: str = "deploy/helm-chart") -> str:  # fmt: skip
    """The ``helm upgrade --install`` that applies exactly ``values`` (key material masked).

    Scalars go as ``--set``; strings Helm would retype or split (commas, ``true``, numbers) and
    lists go as ``--set-json``, so copying the command reproduces the values.
    """
    words = ["helm", "upgrade", "--install", release, chart]
    if namespace:
        words += ["--namespace", namespace]
    flags = _flags(values, "")
    lines = [" ".join(words)]
    for i in range(0, len(flags), 2):
        lines.append(f"  {flags[i]} {shlex.quote(flags[i + 1])}")
    return " \\\n".join(lines)
