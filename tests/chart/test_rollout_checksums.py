"""A changed inline Secret rolls the pod (a changed policy ConfigMap does not), and ``helm template`` and
``helm install`` (client dry run) render the same objects and refuse the same values."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import install_release, render
from helm_runbook.chart.smoke import ci_files
from helm_runbook.chart.values import merge_values, nested
from helm_runbook.errors import ChartError
from tests.chart.conftest import SEED, template

KEYED = {
    "helm.signing.key": SEED,
    "helm.auth.adminAPIKey": "admin-1",
}  # no generated seed: renders repeat


def _checksums(dotted: dict[str, Any]) -> dict[str, str]:
    annotations = (
        template({**KEYED, **dotted})
        .get("Deployment")["spec"]["template"]["metadata"]
        .get("annotations", {})
    )
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_a_changed_inline_api_key_rolls_the_pod_and_nothing_else_does() -> None:
    base = _checksums({})
    assert set(base) == {"checksum/secret"}
    rotated = _checksums({"helm.auth.adminAPIKey": "admin-2"})
    assert rotated["checksum/secret"] != base["checksum/secret"]
    assert _checksums({"service.type": "NodePort", "replicaCount": 1}) == base


def test_a_changed_policy_configmap_does_not_roll_the_pod() -> None:
    """Upstream asserts ``checksum/config`` is absent: the mounted files follow the ConfigMap
    (the kubelet syncs them) and the runtime reconciles them live, so policy changes never
    restart governed traffic."""
    base = template(KEYED).get("Deployment")["spec"]["template"]
    widened = template({**KEYED, "helm.policy.runtimeActions": [{"action": "LLM_INFERENCE"}]})
    assert widened.get("Deployment")["spec"]["template"] == base
    assert widened.get("ConfigMap") != template(KEYED).get("ConfigMap")
    assert "checksum/config" not in yaml.safe_dump([obj for _, obj in template(KEYED).objects])


def test_objects_from_elsewhere_add_no_checksum_and_pod_annotations_stay() -> None:
    annotations = template({"helm.signing.existingSecret": "s", "helm.policy.source.mountedFile.existingConfigMap": "p",
                            "podAnnotations": {"team": "ai"}}).get("Deployment")["spec"]["template"]["metadata"]["annotations"]  # fmt: skip
    assert annotations == {"team": "ai"}


def _objects(values: dict[str, Any], via: str) -> list[dict[str, Any]]:
    if via == "template":
        release = render(CHART_DIR, values, release="helm-ai-kernel", namespace="ns1")
    else:
        release = install_release(
            CHART_DIR, "helm-ai-kernel", values, namespace="ns1", dry_run="client"
        )
    # the helm test hook Pod is not part of an install's manifest
    return sorted((obj for _, obj in release.objects if obj["kind"] != "Pod"),
                  key=lambda o: (o["kind"], o["metadata"]["name"]))  # fmt: skip


@pytest.mark.parametrize("path", ci_files(), ids=lambda p: p.name)
def test_template_and_install_dry_run_render_the_same_objects(path: Any) -> None:
    values = merge_values(
        yaml.safe_load(path.read_text()) or {}, nested({"helm.signing.key": SEED})
    )
    values["helm"]["signing"].pop("existingSecret", None)
    assert _objects(values, "template") == _objects(values, "install")


def test_template_and_install_refuse_production_without_a_key_alike() -> None:
    values = nested({"helm.production": True, "helm.auth.existingSecret": "a",
                     "helm.proxy.upstream": "https://llm.example.internal/v1"})  # fmt: skip
    refusals = []
    for via in ("template", "install"):
        with pytest.raises(ChartError) as refused:
            _objects(values, via)
        refusals.append(refused.value.message)
    assert refusals[0] == refusals[1] and "helm.signing.key" in refusals[0]


def test_no_guard_depends_on_the_cluster() -> None:
    """A lookup in a guard answers differently with and without a cluster (template vs install)."""
    assert "lookup " not in (CHART_DIR / "templates" / "_validate.tpl").read_text().replace(
        "No lookup", ""
    )
