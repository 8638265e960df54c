"""No value rewrites the render: every string leaf of values.yaml, set to a value carrying YAML's
structure characters (a newline, ``: ``, ``#``, ``{{``, ``"``), is either refused naming that
value, or renders objects identical to the baseline except where that value is printed.

A leaf is exercised on a baseline that renders it (ingress, metrics, the reloader sidecar and a
runtime action on; PostgreSQL and the control plane; the CRD source). A leaf whose default is
empty gets a plain value first (``x1``, or a well-formed one), so the comparison is between a
plain value and the same value with the payload. Rendered in process through Helm's Go SDK:
two renders for a leaf that takes the payloads, six for one that refuses them (~20 ms each),
spread over the suite's workers by leaf.
"""

from __future__ import annotations

import base64
import copy
import json
import tomllib
from functools import cache
from typing import Any
from urllib.parse import quote_plus

import pytest
import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import render
from helm_runbook.chart.values import merge_values, nested
from helm_runbook.errors import ChartError
from tests.chart.conftest import SEED

PAYLOADS = ("\n", ": ", "#", "{{", '"')

_KEYED = nested({"helm.signing.key": SEED, "helm.auth.adminAPIKey": "admin-a",
                 "helm.auth.serviceAPIKey": "service-a"})  # fmt: skip
BASELINES: dict[str, dict[str, Any]] = {
    "wide": merge_values(_KEYED, {
        "ingress": {"enabled": True, "tls": [{"secretName": "tls-a", "hosts": ["helm.local"]}]},
        "helm": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
                 "policy": {"reloadHints": {"configReloaderSidecar": {"enabled": True}},
                            "signature": {"publicKey": SEED},
                            "runtimeActions": [{"action": "file_read", "expression": "true",
                                                "description": "read"}]}},
    }),
    "postgres-controlplane": merge_values(_KEYED, nested({
        "helm.storage.type": "postgres", "helm.storage.postgres.host": "db.example.internal",
        "helm.policy.source.kind": "controlplane",
        "helm.policy.source.controlplane.url": "https://cp.example.internal",
        "helm.policy.source.controlplane.auth.mode": "bearerToken",
        "helm.policy.source.controlplane.auth.bearerToken": "token-a",
        "helm.policy.signature.required": True, "helm.policy.signature.publicKey": SEED,
    })),
    "crd": merge_values(_KEYED, nested({
        "helm.policy.source.kind": "crd", "helm.policy.source.crd.install": True,
        "helm.policy.source.crd.allowedConfigMapNames": ["cm-a"],
        "helm.policy.source.crd.allowedSecretNames": ["secret-a"],
    })),
}  # fmt: skip
# A well-formed value for a leaf whose default is empty (otherwise "x1").
PLAIN = {
    "helm.signing.key": SEED,
    "helm.policy.signature.publicKey": SEED,
    "helm.policy.source.controlplane.url": "https://cp.example.internal",
    "helm.storage.postgres.host": "db.example.internal",
    "image.tag": "v1",
}


def _leaves(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [path] if isinstance(value, str) else []


def _baseline_of(leaf: str) -> str:
    if leaf.startswith(("helm.storage.postgres.", "helm.policy.source.controlplane.")):
        return "postgres-controlplane"
    return "crd" if leaf.startswith("helm.policy.source.crd.") else "wide"


@cache
def _defaults() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    return loaded


def _all_leaves() -> list[str]:
    leaves: list[str] = []
    for name, layer in BASELINES.items():
        for leaf in _leaves(merge_values(_defaults(), layer)):
            if _baseline_of(leaf) == name and leaf not in leaves:
                leaves.append(leaf)
    return leaves


def _steps(leaf: str) -> list[str | int]:
    out: list[str | int] = []
    for part in leaf.split("."):
        name, *indices = part.replace("]", "").split("[")
        out += [name, *(int(i) for i in indices)]
    return out


def _with(values: dict[str, Any], leaf: str, value: str) -> dict[str, Any]:
    out = copy.deepcopy(values)
    node: Any = out
    *parents, last = _steps(leaf)
    for step in parents:
        node = node[step]
    node[last] = value
    return out


def _current(values: dict[str, Any], leaf: str) -> str:
    node: Any = values
    for step in _steps(leaf):
        node = node[step]
    return str(node)


def _file(name: str, text: str) -> Any:
    """A ConfigMap file as the runtime reads it: a value must not change its structure."""
    if name.endswith(".toml"):
        return tomllib.loads(text)
    if name.endswith(".json"):
        return json.loads(text)
    if name.endswith(".yaml"):
        return yaml.safe_load(text)
    return text


def _flat(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(v, f"{path}/{k}", out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flat(v, f"{path}/{i}", out)
    else:
        out[path] = value


def _leaves_of(values: dict[str, Any]) -> dict[str, Any]:
    """Every leaf of every rendered object, Secret data decoded and ConfigMap files parsed;
    the Secret checksum annotation left out (it follows any Secret change by design)."""
    out: dict[str, Any] = {}
    for i, (source, obj) in enumerate(render(CHART_DIR, values, namespace="ns1").objects):
        obj = copy.deepcopy(obj)
        if obj["kind"] == "Secret":
            obj["data"] = {
                k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()
            }
        if obj["kind"] == "ConfigMap":
            obj["data"] = {k: _file(k, v) for k, v in (obj.get("data") or {}).items()}
        annotations = (
            obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
        )
        annotations.pop("checksum/secret", None)
        _flat(obj, f"{i}:{source}:{obj['kind']}", out)
    return out


def _printed(marked: str, value: object) -> bool:
    """The value shows the marked value as written, or query-escaped (inside a URL)."""
    return marked in str(value) or quote_plus(marked) in str(value)


@pytest.mark.parametrize("leaf", _all_leaves())
def test_a_value_is_refused_by_name_or_changes_only_where_it_is_printed(leaf: str) -> None:
    layer = merge_values(_defaults(), BASELINES[_baseline_of(leaf)])
    plain = _current(layer, leaf) or PLAIN.get(leaf, "x1")
    base_values = _with(layer, leaf, plain)
    # All payloads in one value first: when that renders cleanly, so does each alone (quoting
    # escapes character by character); a refusal is then checked payload by payload.
    together = "".join(PAYLOADS)
    for payload in (together, *PAYLOADS):
        marked = f"{plain}{payload}z"
        try:
            seen = _leaves_of(_with(base_values, leaf, marked))
        except ChartError as refused:
            assert leaf in refused.message, (
                f"{payload!r}: refused without naming {leaf}: {refused.message}"
            )
            continue
        base = _leaves_of(base_values)
        assert seen.keys() == base.keys(), (
            f"{leaf}={marked!r} changed the structure: added {sorted(seen.keys() - base.keys())[:5]}, "
            f"removed {sorted(base.keys() - seen.keys())[:5]}"
        )
        changed = {path: seen[path] for path in base if seen[path] != base[path]}
        elsewhere = {path: value for path, value in changed.items() if not _printed(marked, value)}
        assert not elsewhere, f"{leaf}={marked!r} changed fields that do not print it: {elsewhere}"
        if payload == together:
            break


def test_the_property_covers_every_string_leaf_of_values_yaml() -> None:
    covered = set(_all_leaves())
    assert set(_leaves(_defaults())) <= covered
    assert len(covered) > 80  # values.yaml's ~75 string leaves and the baselines' (tls, actions)
