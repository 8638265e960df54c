"""The kube target's Kubernetes calls against kmock's API emulator (the official client, real HTTP),
and its ``helm upgrade --install`` through Helm's Go SDK as a client-side dry run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import install_release
from helm_runbook.errors import ChartError, RenderError, StepFailed, TargetUnavailable
from helm_runbook.steps import prepare_secrets
from helm_runbook.steps.deploy import restart_pod, wait_for_rollout
from helm_runbook.targets import open_target
from helm_runbook.targets.kube import RESTARTED_AT, KubeTarget
from tests.kube_emulator import BackgroundKmock, emulated_target, write_kubeconfig

NAMESPACE = "runbook"
AUTH = {"helm": {"auth": {"existingSecret": "helm-auth"}}}


@pytest.fixture
def kube(emulator: BackgroundKmock, tmp_path: Path) -> Iterator[KubeTarget]:
    yield from emulated_target(emulator, tmp_path, NAMESPACE)


def _chart_deployment(target: KubeTarget) -> dict[str, Any]:
    """The chart's real Deployment (a client-side dry-run install), created in the emulator."""
    rendered = install_release(
        CHART_DIR, target.release, AUTH, namespace=target.namespace, dry_run="client"
    )
    deployment = rendered.get("Deployment")
    deployment["metadata"]["namespace"] = (
        target.namespace
    )  # the API server fills it in; kmock does not
    target.apps.create_namespaced_deployment(target.namespace, deployment)
    return deployment


def _mark_rolled_out(target: KubeTarget, delay: float) -> threading.Thread:
    """What the controller does: after ``delay``, report the rollout's generation and ready replicas."""

    def report() -> None:
        time.sleep(delay)
        status = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}
        target.apps.patch_namespaced_deployment(
            target.release, target.namespace, {"status": status}
        )

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    return thread


def test_secret_setup_creates_secrets_through_the_api_and_keeps_them(kube: KubeTarget) -> None:
    first = prepare_secrets(kube)
    stored = kube.core.read_namespaced_secret("helm-signing", kube.namespace)
    assert set(stored.data) == {"signing-key"}
    assert len(kube.secrets["helm-signing"]["signing-key"]) == 64
    assert set(kube.secrets["helm-auth"]) == {"HELM_ADMIN_API_KEY", "HELM_SERVICE_API_KEY"}
    assert {"helm-signing", "helm-auth"} <= set(kube.secrets)
    second = prepare_secrets(kube)
    assert second.values == first.values  # same fingerprints: existing Secrets are reused


def test_creating_an_existing_secret_fails_with_the_kubectl_fix(kube: KubeTarget) -> None:
    kube.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "a"})
    with pytest.raises(StepFailed) as failed:
        kube.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "b"})
    assert failed.value.fix.startswith(f"kubectl -n {kube.namespace} delete secret helm-auth")
    assert kube.secrets["helm-auth"]["HELM_ADMIN_API_KEY"] == b"a"
    assert "missing" not in kube.secrets


def test_config_map_apply_creates_then_updates(kube: KubeTarget) -> None:
    kube.apply_config_map("helm-policy", {"serve-policy.toml": "v1"})
    kube.apply_config_map("helm-policy", {"serve-policy.toml": "v2", "serve-policy.toml.sig": "s"})
    assert dict(kube.config_maps["helm-policy"]) == {
        "serve-policy.toml": "v2",
        "serve-policy.toml.sig": "s",
    }
    assert kube.config_maps.get("absent") is None


def test_install_is_helm_upgrade_install_through_the_go_sdk(kube: KubeTarget) -> None:
    rendered = kube.install(AUTH, "edge", dry_run="client")
    assert kube.release == "edge"
    deployment = rendered.get("Deployment")
    assert deployment["metadata"]["name"] == kube.deployment_name == "edge-helm-ai-kernel"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "edge"
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HELM_ADMIN_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "helm-auth"


def test_production_install_without_keys_is_refused_before_the_cluster(kube: KubeTarget) -> None:
    with pytest.raises(RenderError, match=r"helm\.signing") as refused:
        kube.install({"helm": {"production": True}}, dry_run="client")
    assert refused.value.fix


def test_rollout_wait_watches_until_the_controller_reports_ready(kube: KubeTarget) -> None:
    _chart_deployment(kube)
    reporter = _mark_rolled_out(kube, 0.3)
    waited = kube.wait_ready(timeout=10)
    reporter.join()
    assert 0.2 <= waited < 5  # returned on the status update, not before and not by timing out


def test_rollout_that_never_becomes_ready_fails_with_describe_and_logs(kube: KubeTarget) -> None:
    _chart_deployment(kube)
    stuck = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0}
    kube.apps.patch_namespaced_deployment(kube.release, kube.namespace, {"status": stuck})
    with pytest.raises(StepFailed) as failed:
        kube.wait_ready(timeout=1.5)
    assert failed.value.step == "rollout.ready"
    assert failed.value.seen.startswith("0 ready, 1 updated")
    assert f"describe deploy/{kube.release}" in failed.value.fix


def test_restart_patches_the_pod_template_like_kubectl_rollout_restart(kube: KubeTarget) -> None:
    _chart_deployment(kube)
    _mark_rolled_out(kube, 0.0).join()
    report = restart_pod(kube, timeout=10)
    annotations = kube.deployment["spec"]["template"]["metadata"]["annotations"]
    assert RESTARTED_AT in annotations
    assert report.values == {"restarts": 1}


def test_port_forward_needs_a_running_pod_and_a_named_port(kube: KubeTarget) -> None:
    deployment = _chart_deployment(kube)
    with pytest.raises(TargetUnavailable, match="no pod is running"):
        kube.url("http")
    labels = deployment["spec"]["selector"]["matchLabels"]
    pod = {
        "metadata": {"name": "helm-ai-kernel-0", "namespace": kube.namespace, "labels": labels},
        "spec": {"containers": [{"name": "helm-ai-kernel", "image": "x"}]},
        "status": {"phase": "Running"},
    }
    kube.core.create_namespaced_pod(kube.namespace, pod)
    assert kube.running_pod() == "helm-ai-kernel-0"
    with pytest.raises(TargetUnavailable, match="no port named grpc") as missing:
        kube.url("grpc")
    assert "health" in missing.value.fix and "http" in missing.value.fix


def test_rollout_step_reports_forwarded_ports(
    kube: KubeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    _chart_deployment(kube)
    _mark_rolled_out(kube, 0.0).join()
    monkeypatch.setattr(kube, "_forward", lambda name: {"http": 18080, "health": 18081}[name])
    report = wait_for_rollout(kube, timeout=10)
    assert report.values["ports"] == ["health", "http"]
    assert ["http", "127.0.0.1:18080"] in report.rows  # where this run's forward listens
    # the command to copy is the guide's, never this run's free ports (issue 31)
    assert "port-forward svc/helm-ai-kernel 8080:8080 8081:8081" in report.command
    assert "18080" not in report.command


def test_open_target_reads_the_context_and_its_namespace(
    emulator: BackgroundKmock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_kubeconfig(
        emulator.url, tmp_path / "kubeconfig", context="staging", namespace="team-a"
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    target = open_target("staging", tmp_path)
    assert (target.name, target.namespace) == ("kube:staging", "team-a")
    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "k"})
    assert target.secrets["helm-auth"]["HELM_ADMIN_API_KEY"] == b"k"
    assert open_target("staging/other", tmp_path).namespace == "other"
    with pytest.raises(TargetUnavailable) as unknown:
        open_target("prod-eu", tmp_path)
    assert "kubectl config get-contexts" in unknown.value.fix


@pytest.mark.notebooks
def test_the_secret_setup_runbook_runs_against_a_kube_context(
    emulator: BackgroundKmock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same notebook, a kube context instead of ``local``: papermill's kernel (another process)
    creates the Secrets through the official client in the emulated cluster."""
    from helm_runbook import runner
    from helm_runbook.harness.record import read_records

    path = write_kubeconfig(emulator.url, tmp_path / "kubeconfig", namespace="ops")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(runner, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "kube-workdir")
    (tmp_path / "runbooks").mkdir()
    entry = runner.execute(
        runner.NOTEBOOKS / "02-secret-setup.ipynb", target="emulated/ops", cell_timeout=60
    )
    assert entry["status"] == "passed", entry["failure"]
    [step] = [
        r
        for r in read_records(tmp_path / "runbooks" / "02-secret-setup.ipynb")
        if r["step"] == "secrets.setup"
    ]
    with client.ApiClient(client.Configuration(host=emulator.url)) as api:
        stored = client.CoreV1Api(api).read_namespaced_secret("helm-auth", "ops")
    assert set(stored.data) == {"HELM_ADMIN_API_KEY", "HELM_SERVICE_API_KEY"}
    assert step["values"]  # fingerprints recorded, the values themselves never


def test_no_stand_in_upstream_on_a_cluster(kube: KubeTarget) -> None:
    from helm_runbook.steps.upstream import start_stand_in_upstream

    _chart_deployment(kube)
    report = start_stand_in_upstream(kube)
    assert report.values == {"stand_in": False}


def test_uninstall_reports_kept_and_deleted_objects_and_the_supplied_values(
    kube: KubeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator serves no OpenAPI, so Helm cannot apply a release to it: the release record
    helm uninstall returns is the chart's real render here."""
    import helm_runbook.targets.kube as kube_module

    rendered = install_release(
        CHART_DIR, "helm-ai-kernel", AUTH, namespace=kube.namespace, dry_run="client"
    )
    monkeypatch.setattr(kube_module, "uninstall_release", lambda release, **_: (rendered, ""))
    gone = kube.uninstall()
    assert gone.kept == ["PersistentVolumeClaim/helm-ai-kernel-data"]
    assert {"Deployment/helm-ai-kernel", "Secret/helm-ai-kernel-signing"} <= set(gone.deleted)
    assert gone.values == AUTH


def test_uninstall_of_an_absent_release_is_refused_by_helm_with_a_fix(
    emulator: BackgroundKmock, tmp_path: Path
) -> None:
    path = write_kubeconfig(emulator.url, tmp_path / "kubeconfig", namespace="ops")
    target = KubeTarget("emulated", namespace="ops", workdir=tmp_path, kubeconfig=str(path))
    with pytest.raises(ChartError, match="helm uninstall helm-ai-kernel failed") as refused:
        target.uninstall()
    assert "helm status helm-ai-kernel" in refused.value.fix


def _kubeconfig_target(emulator: BackgroundKmock, tmp_path: Path) -> KubeTarget:
    """A target whose Helm SDK calls reach the emulator through a kubeconfig."""
    path = write_kubeconfig(emulator.url, tmp_path / "kubeconfig", namespace="ops")
    return KubeTarget("emulated", namespace="ops", workdir=tmp_path, kubeconfig=str(path))


def test_history_of_an_absent_release_is_empty_from_helms_own_storage(
    emulator: BackgroundKmock, tmp_path: Path
) -> None:
    """helm history reads the release Secrets Helm keeps in the namespace: none here."""
    assert _kubeconfig_target(emulator, tmp_path).history() == []


def test_rollback_of_an_absent_release_is_refused_by_helm_with_a_fix(
    emulator: BackgroundKmock, tmp_path: Path
) -> None:
    with pytest.raises(ChartError, match="helm rollback helm-ai-kernel failed") as refused:
        _kubeconfig_target(emulator, tmp_path).rollback(timeout=5)
    assert "helm history helm-ai-kernel" in refused.value.fix


def test_history_and_rollback_read_helms_release_records(
    kube: KubeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator serves no OpenAPI, so Helm cannot store a release in it: the records here
    are shaped as Helm's history returns them, around the chart's real render."""
    import helm_runbook.targets.kube as kube_module

    rendered = install_release(
        CHART_DIR, "helm-ai-kernel", AUTH, namespace=kube.namespace, dry_run="client"
    )
    manifest = yaml.safe_dump_all([obj for _, obj in rendered.objects])
    records = [
        {"revision": 1, "status": "superseded", "description": "Install complete", "config": AUTH,
         "manifest": manifest, "deployed_at": "2026-01-01T00:00:00Z"},
        {"revision": 2, "status": "deployed", "description": "Upgrade complete", "config": {}, "manifest": manifest},
        {"revision": 3, "status": "failed", "description": "Upgrade failed: timed out", "config": {}, "manifest": ""},
    ]  # fmt: skip
    calls: list[tuple[str, int | None, int]] = []
    monkeypatch.setattr(kube_module, "release_history", lambda release, **_: records)

    def rollback_release(release: str, revision: int | None, *, timeout_s: int, **_: Any) -> None:
        calls.append((release, revision, timeout_s))
        records.append({"revision": 4, "status": "deployed", "description": "Rollback to 2",
                        "config": {}, "manifest": manifest})  # fmt: skip

    monkeypatch.setattr(kube_module, "rollback_release", rollback_release)
    history = kube.history()
    assert [(r.number, r.status) for r in history] == [
        (1, "superseded"),
        (2, "deployed"),
        (3, "failed"),
    ]
    assert history[0].values == AUTH and history[0].updated == "2026-01-01T00:00:00Z"
    assert {o["kind"] for o in history[1].manifest} >= {
        "Deployment",
        "Secret",
        "PersistentVolumeClaim",
    }
    made = kube.rollback(timeout=7.5)
    assert calls == [("helm-ai-kernel", None, 7)]
    assert (made.number, made.status, made.description) == (4, "deployed", "Rollback to 2")


def test_an_upgrade_helm_marks_failed_is_a_rollout_failure_with_helms_message(
    kube: KubeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    import helm_runbook.targets.kube as kube_module

    def upgrade_release(*_: Any, timeout_s: int, **__: Any) -> None:
        raise RenderError("helm upgrade helm-ai-kernel failed", fix="roll back",
                          helm_message=f"context deadline exceeded after {timeout_s}s")  # fmt: skip

    monkeypatch.setattr(kube_module, "upgrade_release", upgrade_release)
    with pytest.raises(StepFailed) as failed:
        kube.upgrade(AUTH, timeout=3)
    assert failed.value.step == "rollout.ready"
    assert "deadline exceeded after 3s" in failed.value.seen


def test_diagnose_finds_a_release_by_its_instance_label_not_a_fixed_name(kube: KubeTarget) -> None:
    from helm_runbook.tools.diagnose import diagnose

    acme = kube.for_release("acme-gw")
    deployment = _chart_deployment(acme)
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "acme-gw"
    # the default release is not there: nothing to read
    assert diagnose(kube).finding("readiness").status == "skipped"
    found = diagnose(kube, release="acme-gw", namespace=kube.namespace)
    assert acme.deployment_name == deployment["metadata"]["name"]
    assert found.finding("readiness").seen != diagnose(kube).finding("readiness").seen
    assert "no pod is running" in found.finding("readiness").seen


@pytest.mark.notebooks
def test_the_profile_set_at_02_carries_to_03_which_refuses_a_cluster_without_an_upstream(
    emulator: BackgroundKmock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """02 on a kube context with non-default names writes them to the run profile; 03, given
    nothing, reads them and refuses to point a cluster release at this machine's loopback."""
    from helm_runbook import runner
    from helm_runbook.steps.profile import load_profile

    path = write_kubeconfig(emulator.url, tmp_path / "kubeconfig", namespace="acme")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(runner, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "kube-workdir")
    (tmp_path / "runbooks").mkdir()
    names = {"release": "acme-gw", "signing_secret": "acme-signing", "auth_secret": "acme-auth"}
    entry = runner.execute(runner.NOTEBOOKS / "02-secret-setup.ipynb", target="emulated/acme",
                            cell_timeout=60, extra=names)  # fmt: skip
    assert entry["status"] == "passed", entry["failure"]
    profile = load_profile(tmp_path / "profile.yaml")
    assert (profile.release, profile.signing_secret, profile.auth_secret) == (
        "acme-gw",
        "acme-signing",
        "acme-auth",
    )
    assert profile.target_spec == "emulated/acme"
    with client.ApiClient(client.Configuration(host=emulator.url)) as api:
        core = client.CoreV1Api(api)
        assert set(core.read_namespaced_secret("acme-auth", "acme").data) == {
            "HELM_ADMIN_API_KEY",
            "HELM_SERVICE_API_KEY",
        }
        assert set(core.read_namespaced_secret("acme-signing", "acme").data) == {"signing-key"}
    entry = runner.execute(
        runner.NOTEBOOKS / "03-production-install.ipynb", target="emulated/acme", cell_timeout=60
    )
    assert entry["status"] == "failed"
    failure = entry["failure"]
    assert failure["error"] == "StepFailed", failure
    assert "no upstream_url for release acme-gw on emulated/acme" in failure["message"]
    assert "upstream_url" in failure["fix"]


@pytest.mark.notebooks
def test_the_control_plane_runbook_on_a_kube_context_refuses_the_loopback_stand_in(
    emulator: BackgroundKmock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runbook 07 against a kube context without ``controlplane_url``: the three Secrets are
    created in the emulated cluster, then the step that would start the stand-in refuses, naming
    the parameter, before anything is installed."""
    from helm_runbook import runner
    from helm_runbook.harness.record import read_records

    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig_target(emulator, tmp_path).kubeconfig))
    monkeypatch.setattr(runner, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "kube-workdir")
    entry = runner.execute(
        runner.NOTEBOOKS / "07-control-plane-install.ipynb",
        target="emulated/cp07",
        cell_timeout=60,
    )
    assert entry["status"] == "failed"
    failure = entry["failure"]
    assert failure["step"] == "controlplane.start" and "controlplane_url" in failure["fix"], failure
    ran = [
        r["step"]
        for r in read_records(tmp_path / "runbooks" / "failed" / "07-control-plane-install.ipynb")
    ]
    assert ran == ["profile", "secrets.setup", "secrets.policy_trust", "controlplane.start"]
    with client.ApiClient(client.Configuration(host=emulator.url)) as api:
        names = {
            s.metadata.name for s in client.CoreV1Api(api).list_namespaced_secret("cp07").items
        }
    assert names == {
        "helm-signing",
        "helm-auth",
        "helm-policy-trust",
    }  # no stand-in token, no release
