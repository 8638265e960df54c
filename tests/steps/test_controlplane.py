"""Runbook 07's steps on a kube context (kmock's API emulator, the official client over real HTTP):
the Secrets, the operator's control plane instead of the loopback stand-in, the install's rendered
objects, stand-in steps skipped with their reason, and the refusal where a real pod is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.steps import prepare_secrets
from helm_runbook.steps.controlplane import (
    TOKEN_KEY,
    await_verdict,
    create_trust_secret,
    publish_version,
    rotate_control_plane_token,
    set_control_plane_down,
    start_control_plane,
)
from helm_runbook.steps.policy import governed_request, policy_signer, wake_reconcile
from helm_runbook.targets.kube import KubeTarget
from helm_runbook.targets.local import LocalTarget
from tests.kube_emulator import BackgroundKmock, emulated_target

OPERATOR_URL = "https://policy.example.internal"
CHAT = {"action": "LLM_INFERENCE"}


@pytest.fixture
def kube(emulator: BackgroundKmock, tmp_path: Path) -> Iterator[KubeTarget]:
    yield from emulated_target(emulator, tmp_path, "cp")


def _operator_token(kube: KubeTarget) -> None:
    kube.create_secret("helm-policy-controlplane", {TOKEN_KEY: "operator-token-0123456789"})


def _controlplane_values(url: str, token_secret: str) -> dict[str, Any]:
    """Runbook 07's install values (cell c11): the guide's flags and the control plane's token."""
    return {"helm": {
        "production": True,
        "policy": {"source": {"kind": "controlplane", "pollInterval": "2s",
                              "controlplane": {"url": url, "auth": {"mode": "bearerToken", "existingSecret": token_secret}},
                              "mountedFile": {"existingConfigMap": "helm-policy-cp"}},
                   "signature": {"required": True, "existingSecret": "helm-policy-trust"}},
        "signing": {"existingSecret": "helm-signing"},
        "auth": {"existingSecret": "helm-auth"},
        "proxy": {"upstream": "http://127.0.0.1:9/v1"},
    }}  # fmt: skip


def _create_in_cluster(kube: KubeTarget, rendered: RenderedRelease) -> dict[str, dict[str, Any]]:
    """What Helm applies, created through the official client (kmock serves no OpenAPI, so Helm
    itself cannot apply); returns the objects as the emulated cluster then holds them."""
    created: dict[str, dict[str, Any]] = {}
    for _, obj in rendered.objects:
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": kube.namespace}}
        name, kind = obj["metadata"]["name"], obj["kind"]
        create, read = {
            "Deployment": (kube.apps.create_namespaced_deployment, kube.apps.read_namespaced_deployment),
            "Service": (kube.core.create_namespaced_service, kube.core.read_namespaced_service),
            "ConfigMap": (kube.core.create_namespaced_config_map, kube.core.read_namespaced_config_map),
            "Secret": (kube.core.create_namespaced_secret, kube.core.read_namespaced_secret),
            "PersistentVolumeClaim": (kube.core.create_namespaced_persistent_volume_claim,
                                      kube.core.read_namespaced_persistent_volume_claim),
        }.get(kind, (None, None))  # fmt: skip
        if create is None or read is None:
            continue
        create(kube.namespace, obj)
        created[f"{kind}/{name}"] = kube._client.sanitize_for_serialization(
            read(name, kube.namespace)
        )
    return created


def test_the_three_secrets_of_the_guide_are_created_through_the_api(kube: KubeTarget) -> None:
    prepare_secrets(kube)
    trust = create_trust_secret(kube)
    for name, keys in {"helm-signing": {"signing-key"}, "helm-auth": {"HELM_ADMIN_API_KEY", "HELM_SERVICE_API_KEY"},
                       "helm-policy-trust": {"HELM_POLICY_TRUST_PUBLIC_KEY"}}.items():  # fmt: skip
        assert set(kube.core.read_namespaced_secret(name, kube.namespace).data) == keys
    held = kube.secrets["helm-policy-trust"]["HELM_POLICY_TRUST_PUBLIC_KEY"].decode()
    assert held == policy_signer(kube).public_key_hex
    assert trust.values["secret"] == "helm-policy-trust" and "source" not in trust.values
    again = create_trust_secret(kube)  # a re-run reuses the Secret
    assert again.rows[0][3] == "existing Secret"


def test_a_cluster_needs_the_operators_control_plane_not_the_loopback_stand_in(
    kube: KubeTarget,
) -> None:
    with pytest.raises(StepFailed) as refused:
        start_control_plane(kube)
    assert refused.value.step == "controlplane.start"
    assert "controlplane_url" in refused.value.fix and "127.0.0.1" in refused.value.seen
    assert "helm-policy-controlplane" not in kube.secrets  # no stand-in token was generated


def test_the_operators_control_plane_needs_https_and_its_token_secret(kube: KubeTarget) -> None:
    with pytest.raises(StepFailed, match="https") as plain:
        start_control_plane(kube, url="http://policy.example.internal")
    assert "https URL" in plain.value.fix
    with pytest.raises(StepFailed) as missing:
        start_control_plane(kube, url=OPERATOR_URL)
    assert f"--from-literal={TOKEN_KEY}=<token>" in missing.value.fix
    _operator_token(kube)
    plane = start_control_plane(kube, url=OPERATOR_URL + "/")
    assert (plane.url, plane.stand_in, plane.server) == (OPERATOR_URL, False, None)
    assert plane.token_secret == "helm-policy-controlplane"
    assert "operator-token" not in repr(plane)


def test_the_install_renders_the_guides_objects_into_the_emulated_cluster(kube: KubeTarget) -> None:
    prepare_secrets(kube)
    create_trust_secret(kube)
    _operator_token(kube)
    plane = start_control_plane(kube, url=OPERATOR_URL)
    rendered = kube.install(_controlplane_values(plane.url, plane.token_secret), dry_run="client")
    created = _create_in_cluster(kube, rendered)
    assert {"Deployment/helm-ai-kernel", "Service/helm-ai-kernel",
            "PersistentVolumeClaim/helm-ai-kernel-data"} <= set(created)  # fmt: skip
    deployment = kube.deployment  # read back by the release's instance label, as the steps do
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HELM_POLICY_CONTROLPLANE_URL"]["value"] == OPERATOR_URL
    assert (
        env["HELM_POLICY_TRUST_PUBLIC_KEY"]["valueFrom"]["secretKeyRef"]["name"]
        == "helm-policy-trust"
    )
    assert env[TOKEN_KEY]["valueFrom"]["secretKeyRef"]["name"] == "helm-policy-controlplane"
    assert env["HELM_ADMIN_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "helm-auth"
    # what the checks then need is a running pod: a clear refusal, not a hang
    with pytest.raises(TargetUnavailable, match="no pod is running") as refused:
        governed_request(kube, "file_read", expect="DENY")
    assert "wait for the rollout first" in refused.value.fix


def test_stand_in_steps_are_skipped_with_their_reason_on_the_operators_control_plane(
    kube: KubeTarget,
) -> None:
    _operator_token(kube)
    plane = start_control_plane(kube, url=OPERATOR_URL)
    # no Deployment exists: a step that reached the runtime or the cluster would raise
    reports = [
        publish_version(kube, plane, [CHAT]),
        publish_version(kube, plane, [CHAT], fault="tampered"),
        wake_reconcile(kube, expect="validate_error", stand_in=plane),
        governed_request(kube, "shell", expect="ALLOW", stand_in=plane),
        await_verdict(kube, "shell", expect="ALLOW", within=3.0, stand_in=plane),
        set_control_plane_down(plane, True),
        rotate_control_plane_token(plane, rotated=True),
    ]
    assert [r.step for r in reports] == ["controlplane.publish", "controlplane.publish", "policy.wake",
                                         "policy.verdict", "policy.await", "controlplane.down", "controlplane.token"]  # fmt: skip
    for report in reports:
        assert OPERATOR_URL in str(report.values["skipped"]) and "stand-in" in str(
            report.values["skipped"]
        )
        assert report.title.endswith(": skipped")
    assert "helm-policy-cp" not in kube.config_maps  # nothing was published into the cluster


def test_the_stand_in_still_drives_the_local_target(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    plane = start_control_plane(target)
    try:
        assert plane.stand_in and plane.url.startswith("http://127.0.0.1:")
        report = publish_version(target, plane, [CHAT])
        assert "skipped" not in report.values and report.values["policy_epoch"] == 1
        assert set_control_plane_down(plane, True).values == {"down": True}
    finally:
        plane.close()
