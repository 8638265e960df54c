"""templates/configmap.yaml: the mounted serve policy must be what the runtime accepts."""

from __future__ import annotations

import json

from helm_runbook.formats.policy_bundle import parse_serve_policy
from helm_runbook.runtime.policy.compiler import compile_pack, parse_pack
from tests.chart.conftest import template


def test_policy_files_parse_and_compile_in_the_runtime() -> None:
    data = template(
        {
            "helm.policy.runtimeActions": [
                {
                    "action": "file_read",
                    "expression": "input.effect.params.args.path == '/etc/hostname'",
                }
            ]
        }
    ).get("ConfigMap")["data"]
    serve = parse_serve_policy(data["serve-policy.toml"].encode(), source="configmap")
    assert (serve.name, serve.reference_pack, serve.bind, serve.port, serve.receipts_store) == (
        "helm-chart", "./reference-pack.json", "0.0.0.0", 8080, "sqlite")  # fmt: skip
    compiled = compile_pack(
        serve.name, parse_pack(data["reference-pack.json"].encode(), source="pack"), source="pack"
    )
    assert compiled.allow == frozenset({"file_read"})
    assert "helm.yaml" in data


def test_default_is_deny_all() -> None:
    pack = json.loads(template().get("ConfigMap")["data"]["reference-pack.json"])
    assert pack["runtime_actions"] == []
    assert pack["pack_id"] == "helm-chart-reference-pack"


def test_existing_configmap_or_secret_replaces_it() -> None:
    for dotted, volume in (({"helm.policy.source.mountedFile.existingConfigMap": "mine"}, {"configMap": {"name": "mine"}}),
                           ({"helm.policy.source.mountedFile.existingSecret": "sealed"}, {"secret": {"secretName": "sealed"}})):  # fmt: skip
        release = template(dotted)
        assert not release.has("ConfigMap")
        policy = next(
            v
            for v in release.get("Deployment")["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "policy"
        )
        assert {k: v for k, v in policy.items() if k != "name"} == volume
