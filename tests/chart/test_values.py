"""The equivalent ``helm upgrade --install`` a step shows reproduces the values it applied."""

from __future__ import annotations

import itertools
import json
import shlex
from typing import Any

import pytest

from helm_runbook.chart.sdk import set_values
from helm_runbook.chart.values import helm_command, merge_values, nested

APPLIED = {
    "helm": {
        "production": True,
        "signing": {"existingSecret": "helm-signing"},
        "proxy": {"upstream": "http://127.0.0.1:41234/v1"},
        "policy": {"runtimeActions": [
            {"action": "LLM_INFERENCE", "expression": 'input.effect.params.model.startsWith("mock-")',
             "description": "chat completions, models mock-* only"}]},
        "limits": {"global": {"rps": 0}},
        "region": "1.5",
        "auth": {"tenantID": "a,b", "principalID": "true"},
        "metrics": {"serviceMonitor": {"labels": {}}},
    },
    "persistence": {"enabled": True, "accessModes": ["ReadWriteOnce"]},
}  # fmt: skip


def _parse(command: str) -> dict[str, Any]:
    """What Helm would make of the command's flags (its own strvals parser for --set)."""
    words = shlex.split(command.replace("\\\n", " "))
    values: dict[str, Any] = {}
    for flag, arg in itertools.pairwise(words):
        if flag == "--set":
            values = merge_values(values, set_values(arg))
        elif flag == "--set-json":
            path, _, text = arg.partition("=")
            values = merge_values(values, nested({path: json.loads(text)}))
    return values


def test_the_equivalent_command_reproduces_the_applied_values() -> None:
    command = helm_command(APPLIED, release="helm-ai-kernel", namespace="ops")
    assert command.startswith(
        "helm upgrade --install helm-ai-kernel deploy/helm-chart --namespace ops"
    )
    assert _parse(command) == APPLIED


@pytest.mark.parametrize("path", ["helm.signing.key", "helm.auth.adminAPIKey", "helm.auth.serviceAPIKey",
                                  "helm.storage.postgres.password", "helm.policy.source.controlplane.auth.bearerToken"])  # fmt: skip
def test_key_material_never_reaches_the_command(path: str) -> None:
    command = helm_command(nested({path: "s3cr3t-value-0123"}))
    assert "s3cr3t" not in command
    assert f"{path}=<" in command and "a secret, not shown" in command
