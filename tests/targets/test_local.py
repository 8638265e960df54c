"""The local target runs the rendered chart's pod for real: init container, runtime, restarts."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helm_runbook.chart import CHART_DIR, render
from helm_runbook.errors import StepFailed
from helm_runbook.formats.receipts import chain_problems
from helm_runbook.targets import local
from helm_runbook.targets.local import LocalTarget

pytestmark = pytest.mark.slow
AUTH = {"helm": {"auth": {"existingSecret": "helm-auth"}}}
HEADERS = {
    "Authorization": "Bearer adm",
    "X-Helm-Tenant-ID": "default",
    "X-Helm-Principal-ID": "system-admin",
}


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalTarget]:
    local = LocalTarget(tmp_path)
    yield local
    local.close()


def _install(target: LocalTarget, values: dict[str, object]) -> None:
    target.apply(render(CHART_DIR, values))
    target.start_pod()
    target.wait_ready()


def test_default_release_serves_denies_and_keeps_receipts_across_restart(
    target: LocalTarget,
) -> None:
    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    _install(target, AUTH)
    assert httpx.get(target.url("health") + "/health").text == "OK"
    body = {
        "action": "EXECUTE_TOOL",
        "resource": "unknown.tool.kind",
        "context": {"session_id": "s"},
    }
    denied = httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).json()
    assert (denied["verdict"], denied["reason_code"]) == ("DENY", "PDP_DENY")
    pvc = target.pvc_dir("helm-ai-kernel-data")
    seed = target.secrets["helm-ai-kernel-signing"]["signing-key"]
    assert (pvc / "root.key").read_bytes() == seed
    assert (pvc / "root.key").stat().st_mode & 0o777 == 0o600

    target.restart_pod()
    target.wait_ready()
    listed = httpx.get(target.url() + "/api/v1/receipts", headers=HEADERS).json()["receipts"]
    assert [r["receipt_id"] for r in listed] == [denied["receipt_id"]]
    assert (
        "matches the signing Secret"
        in (target.workdir / "pods/1/prepare-authority-state.log").read_text()
    )
    target.stop_pod()
    assert not (pvc / "helm.db-wal").exists() or (pvc / "helm.db-wal").stat().st_size == 0, (
        "graceful stop checkpoints"
    )


def test_missing_auth_secret_is_create_container_config_error(target: LocalTarget) -> None:
    target.apply(render(CHART_DIR, AUTH))
    with pytest.raises(StepFailed) as failed:
        target.start_pod()
    assert "CreateContainerConfigError" in failed.value.seen
    assert "helm-auth" in failed.value.fix


def test_rotated_signing_secret_on_an_existing_pvc_is_refused(target: LocalTarget) -> None:
    seed = "11" * 32
    _install(target, {"helm": {"signing": {"key": seed}}})
    target.stop_pod()
    target.apply(render(CHART_DIR, {"helm": {"signing": {"key": "22" * 32}}}))
    with pytest.raises(StepFailed) as refused:
        target.start_pod()
    assert "refusing silent rotation" in refused.value.seen
    assert (target.pvc_dir("helm-ai-kernel-data") / "root.key").read_text() == seed


def test_without_persistence_receipts_are_gone_after_restart(target: LocalTarget) -> None:
    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    _install(target, {**AUTH, "persistence": {"enabled": False}})
    body = {"tool": "t", "effect_level": "E1", "session_id": "s"}
    httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body)
    target.restart_pod()
    target.wait_ready()
    assert httpx.get(target.url() + "/api/v1/receipts", headers=HEADERS).json()["count"] == 0


def test_production_release_with_inline_keys_starts(target: LocalTarget) -> None:
    seed = "ab" * 32
    values = {
        "helm": {
            "production": True,
            "signing": {"key": seed},
            "auth": {"adminAPIKey": "adm", "serviceAPIKey": "svc"},
            "proxy": {"upstream": "http://127.0.0.1:9/v1"},
        }
    }
    _install(target, values)
    assert (
        base64.b16decode(seed.upper())
        and httpx.get(target.url() + "/healthz").json()["status"] == "ok"
    )
    assert "production" in target.logs()


@pytest.mark.postgres
def test_a_postgres_release_keeps_receipts_in_the_database_not_the_pod(
    target: LocalTarget, pg_url: str
) -> None:
    """helm.storage.type=postgres with DATABASE_URL from an existing Secret: the pod's receipts
    live in PostgreSQL, so even an emptyDir /data loses none of them on restart."""
    import psycopg

    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    target.create_secret("helm-db", {"DATABASE_URL": pg_url})
    storage = {
        "type": "postgres",
        "postgres": {"existingSecret": "helm-db", "maxOpenConns": 4, "maxIdleConns": 2},
    }
    _install(
        target, {"helm": {**AUTH["helm"], "storage": storage}, "persistence": {"enabled": False}}
    )
    env = {
        e["name"]: e for e in target.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "helm-db",
        "key": "DATABASE_URL",
    }
    assert env["HELM_DB_MAX_OPEN_CONNS"]["value"] == "4"
    body = {"tool": "t", "effect_level": "E1", "session_id": "s"}
    ids = [
        httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).json()[
            "receipt_id"
        ]
        for _ in range(3)
    ]
    with psycopg.connect(pg_url) as db:
        stored = [
            row[0] for row in db.execute("SELECT receipt_id FROM receipts ORDER BY append_sequence")
        ]
    assert stored == ids
    target.restart_pod()
    target.wait_ready()
    listed = httpx.get(target.url() + "/api/v1/receipts", headers=HEADERS).json()["receipts"]
    assert [r["receipt_id"] for r in listed] == ids
    data = target.workdir / "pods" / "1" / "volumes" / "data"  # the emptyDir of the new pod
    assert (data / "root.key").exists() and not (data / "helm.db").exists()


def _command_lines() -> dict[int, bytes]:
    """Every process's argv as ``ps`` shows it to any local user (NULs kept as separators)."""
    lines: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return lines


def test_a_production_release_keeps_its_secrets_out_of_every_command_line(
    target: LocalTarget,
) -> None:
    """Runbook-style: Secrets created first, a production install from them; while the pod runs,
    no process's command line (readable by any local user) holds a key."""
    admin, service, seed = "adm-" + "7" * 40, "svc-" + "8" * 40, "c3" * 32
    target.create_secret(
        "helm-auth", {"HELM_ADMIN_API_KEY": admin, "HELM_SERVICE_API_KEY": service}
    )
    target.create_secret("helm-signing", {"signing-key": seed})
    values = {
        "helm": {
            "production": True,
            "signing": {"existingSecret": "helm-signing"},
            "auth": {"existingSecret": "helm-auth"},
            "proxy": {"upstream": "http://127.0.0.1:9/v1"},
        }
    }
    _install(target, values)
    headers = {**HEADERS, "Authorization": f"Bearer {admin}"}
    assert httpx.get(target.url() + "/api/v1/receipts", headers=headers).status_code == 200
    pod_processes = [target.pod.process_pid] if target.pod else []
    lines = _command_lines()
    assert any(pid in lines for pid in pod_processes), "the pod must still be running"
    for secret in (admin, service, seed):
        leaking = [pid for pid, line in lines.items() if secret.encode() in line]
        assert not leaking, f"a secret is on the command line of pids {leaking}"


def test_uninstall_keeps_the_data_claim_and_a_reinstall_continues_the_chain(
    target: LocalTarget,
) -> None:
    from helm_runbook.steps.deploy import uninstall_and_reinstall

    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    seed = "cd" * 32
    target.install({**AUTH, "helm": {**AUTH["helm"], "signing": {"key": seed}}})
    target.wait_ready()
    body = {
        "action": "EXECUTE_TOOL",
        "resource": "unknown.tool.kind",
        "context": {"session_id": "s"},
    }
    first = httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).json()
    root_key = (target.pvc_dir("helm-ai-kernel-data") / "root.key").read_bytes()

    report = uninstall_and_reinstall(target)
    assert report.values["kept"] == ["PersistentVolumeClaim/helm-ai-kernel-data"]
    assert "helm uninstall helm-ai-kernel --namespace default" in report.command
    assert (target.pvc_dir("helm-ai-kernel-data") / "root.key").read_bytes() == root_key
    second = httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).json()
    listed = httpx.get(target.url() + "/api/v1/receipts", headers=HEADERS).json()["receipts"]
    assert [r["receipt_id"] for r in listed] == [first["receipt_id"], second["receipt_id"]]
    assert [r["lamport_clock"] for r in listed] == [1, 2]
    assert chain_problems(listed) == [], (
        "the reinstalled pod continues the chain of the kept database"
    )


def test_uninstall_deletes_the_release_objects_and_an_unkept_claim(target: LocalTarget) -> None:
    from helm_runbook.steps.deploy import uninstall_and_reinstall

    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    target.install({**AUTH, "persistence": {"keepOnUninstall": False}})
    target.wait_ready()
    claim = target.pvc_dir("helm-ai-kernel-data")
    assert (claim / "root.key").exists()
    with pytest.raises(StepFailed, match=r"persistence\.keepOnUninstall=true"):
        uninstall_and_reinstall(target)
    assert not claim.exists(), "helm uninstall deletes a claim without the keep policy"
    assert (
        "helm-ai-kernel-signing" not in target.secrets
        and "helm-ai-kernel-config" not in target.config_maps
    )
    assert "helm-auth" in target.secrets, "Secrets the release did not create stay"
    assert target.pod is None and target.release is None


def test_helm_runbook_stop_leaves_no_process_the_local_target_started(tmp_path: Path) -> None:
    """``helm-runbook stop`` (also run by ``make clean``): the pod, everything in its sandbox and
    the host relay are gone; no process names the workdir afterwards."""
    from helm_runbook.cli import main
    from helm_runbook.targets.pod import alive, descendants

    local = LocalTarget(tmp_path)
    local.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    _install(local, AUTH)
    local.save()
    assert local.pod is not None
    started = {local.pod.process_pid, local.pod.relay_pid, *descendants(local.pod.process_pid)}
    assert len(started) >= 3 and all(alive(pid) for pid in started)
    # Another process (a new shell) does the stopping, from the state on disk only.
    assert main(["stop", "--workdir", str(tmp_path)]) == 0
    survivors = [pid for pid in started if alive(pid)]
    assert not survivors, f"still running after stop: {survivors}"
    naming = [pid for pid, line in _command_lines().items()
              if str(tmp_path).encode() in line and alive(pid)]  # fmt: skip
    assert not naming, f"processes naming the workdir survive: {naming}"
    assert LocalTarget.open(tmp_path).pod is None
    assert main(["stop", "--workdir", str(tmp_path)]) == 0  # nothing left: says so, exits 0


def _install_with_existing_secrets(target: LocalTarget) -> dict[str, Any]:
    """A ready release whose Secrets exist beforehand (no chart-made Secret, no checksum)."""
    target.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    target.create_secret("helm-signing", {"signing-key": "c3" * 32})
    values: dict[str, Any] = {
        "helm": {**AUTH["helm"], "signing": {"existingSecret": "helm-signing"}}
    }
    target.install(values)
    target.wait_ready()
    return values


def test_an_upgrade_that_leaves_the_pod_template_unchanged_keeps_the_pod(
    target: LocalTarget,
) -> None:
    """As a Deployment: the same template rolls out no new pod; a changed one does."""
    values = _install_with_existing_secrets(target)
    pod = target.pod
    assert pod is not None
    target.install({**values, "service": {"type": "NodePort"}})  # the Service only
    assert target.pod is pod and pod.exit_code() is None
    assert [r.status for r in target.history()] == ["superseded", "deployed"]
    assert target.release is not None
    assert target.release.get("Service")["spec"]["type"] == "NodePort"
    target.install({**values, "podAnnotations": {"team": "ops"}})
    assert target.pod is not pod and pod.exit_code() is not None
    target.wait_ready()


def _policy_file(target: LocalTarget) -> Path:
    assert target.pod is not None
    return (
        target.workdir
        / "pods"
        / str(target.pod.number)
        / "volumes"
        / "policy"
        / "reference-pack.json"
    )


def test_a_policy_change_reaches_the_running_pods_mount_after_the_sync_delay_without_a_restart(
    target: LocalTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a kubelet: ``helm upgrade`` with new runtimeActions changes the chart's ConfigMap only
    (no checksum/config), so the pod keeps running; its mounted files follow the ConfigMap
    ``CONFIG_SYNC_DELAY_S`` later, and the runtime reconciles them live (here the wake hint)."""
    values = _install_with_existing_secrets(target)
    pod = target.pod
    assert pod is not None and '"runtime_actions": []' in _policy_file(target).read_text()
    monkeypatch.setattr(
        local, "CONFIG_SYNC_DELAY_S", 1.0
    )  # "not yet" below, even on a busy machine
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s", "args": {}}
    wake = {"Authorization": "Bearer svc"}
    target.install(
        {
            **values,
            "helm": {**values["helm"], "policy": {"runtimeActions": [{"action": "file_read"}]}},
        }
    )
    assert target.pod is pod and pod.exit_code() is None  # no restart for a policy change
    assert (
        '"runtime_actions": []' in _policy_file(target).read_text()
    )  # not yet: the kubelet's delay
    waited = target.wait_config_synced()
    assert waited <= local.CONFIG_SYNC_DELAY_S + 0.5
    assert '"action":"file_read"' in _policy_file(target).read_text()
    status = httpx.post(target.url() + "/internal/policy/reconcile", headers=wake).json()
    assert status["reconcile_status"] == "ok"
    verdict = httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).json()[
        "verdict"
    ]
    assert verdict == "ALLOW" and target.pod is pod
    # unchanged data is not written again: the mounted file keeps its mtime (the source's epoch)
    mtime = _policy_file(target).stat().st_mtime_ns
    target.apply_config_map(
        "helm-ai-kernel-config", dict(target.config_maps["helm-ai-kernel-config"])
    )
    target.wait_config_synced()
    assert _policy_file(target).stat().st_mtime_ns == mtime


def test_a_probe_path_cannot_send_the_kubelets_probe_elsewhere(target: LocalTarget) -> None:
    release = render(CHART_DIR, {**AUTH, "probes": {"readiness": {"httpGet": {"path": "/health"}}}})
    probe = release.get("Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["path"] = "@127.0.0.1:9999/x"  # what a schema without `^/` would let through
    with pytest.raises(StepFailed) as refused:
        target.apply(release)
    assert (
        "readinessProbe.httpGet.path"
        in refused.value.step + refused.value.expected + refused.value.seen
    )
