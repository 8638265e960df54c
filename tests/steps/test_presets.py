"""The shared values: what the profile puts into a release, and what it refuses on a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import render
from helm_runbook.errors import StepFailed
from helm_runbook.steps.presets import STAND_IN_MODELS, controlplane_values, profile_values
from helm_runbook.steps.profile import RunProfile

ACME = RunProfile(release="acme-gw", signing_secret="acme-signing", auth_secret="acme-auth",
                  policy_trust_secret="acme-trust")  # fmt: skip


def test_a_cluster_release_without_an_upstream_is_refused() -> None:
    with pytest.raises(StepFailed) as refused:
        profile_values(RunProfile(target="prod", release="acme-gw"))
    assert "no upstream_url for release acme-gw on prod" in refused.value.seen
    assert "upstream_url" in refused.value.fix and "runbook 03" in refused.value.fix
    with pytest.raises(StepFailed):
        controlplane_values(RunProfile(target="prod"), url="https://cp.example", config_map="cm",
                            poll_interval="2s", last_known_good_max_age="12s")  # fmt: skip


def test_on_a_cluster_the_operators_upstream_and_models_are_used() -> None:
    run = RunProfile(
        target="prod", upstream_url="https://api.example/v1", upstream_models=("gpt-a",)
    )
    helm = profile_values(run)["helm"]
    assert helm["proxy"]["upstream"] == "https://api.example/v1"
    [rule] = helm["policy"]["runtimeActions"]
    assert rule["expression"] == 'input.effect.params.model in ["gpt-a"]'
    assert run.proxy_model == "gpt-a"


def test_locally_the_stand_in_and_its_models_are_the_defaults() -> None:
    helm = profile_values(ACME, upstream_port=18555)["helm"]
    assert helm["proxy"]["upstream"] == "http://127.0.0.1:18555/v1"
    assert helm["policy"]["runtimeActions"] == [STAND_IN_MODELS]
    assert (helm["signing"], helm["auth"]) == (
        {"existingSecret": "acme-signing"},
        {"existingSecret": "acme-auth"},
    )


def test_the_values_file_merges_over_the_preset(tmp_path: Path) -> None:
    extra = tmp_path / "values.yaml"
    extra.write_text(yaml.safe_dump({"helm": {"metrics": {"enabled": True}}, "replicaCount": 1}))
    values = profile_values(RunProfile(values_file=str(extra)))
    assert values["helm"]["metrics"] == {"enabled": True} and values["replicaCount"] == 1
    assert values["helm"]["auth"] == {"existingSecret": "helm-auth"}  # merged, not replaced


def test_controlplane_values_take_the_profiles_secrets_and_render() -> None:
    values = controlplane_values(ACME, url="http://127.0.0.1:1/cp", config_map="acme-cp", poll_interval="2s",
                                 last_known_good_max_age="12s")  # fmt: skip
    policy = values["helm"]["policy"]
    assert policy["signature"] == {"required": True, "existingSecret": "acme-trust"}
    assert policy["source"]["mountedFile"] == {"existingConfigMap": "acme-cp"}
    rendered = render(CHART_DIR, values, release="acme-gw", namespace="default")
    env = {
        e["name"]: e
        for e in rendered.get("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["EVIDENCE_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "acme-signing"
