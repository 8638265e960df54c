"""The local target keeps revisions as Helm does: numbered, deployed/superseded/failed, each
with its values and manifest, so history and rollback mean the same as on a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helm_runbook.errors import StepFailed, TargetUnavailable
from helm_runbook.targets.local import HISTORY_MAX, LocalTarget

pytestmark = pytest.mark.slow
AUTH: dict[str, Any] = {"helm": {"auth": {"existingSecret": "helm-auth"}, "signing": {"existingSecret": "helm-signing"}},
        "persistence": {"enabled": True}}  # fmt: skip
BROKEN = {**AUTH, "probes": {"readiness": {"httpGet": {"port": 9191}}}}
METRICS = {**AUTH, "helm": {**AUTH["helm"], "metrics": {"enabled": True}}}
HEADERS = {"Authorization": "Bearer adm", "X-Helm-Tenant-ID": "default", "X-Helm-Principal-ID": "system-admin"}  # fmt: skip


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalTarget]:
    local = LocalTarget(tmp_path)
    local.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    local.create_secret("helm-signing", {"signing-key": "11" * 32})
    yield local
    local.close()


def _statuses(target: LocalTarget) -> list[tuple[int, str]]:
    return [(r.number, r.status) for r in target.history()]


def test_a_failed_upgrade_is_recorded_failed_and_a_rollback_restores_the_last_good_revision(
    target: LocalTarget,
) -> None:
    target.install(AUTH)
    target.wait_ready()
    body = {"action": "EXECUTE_TOOL", "resource": "unknown.tool", "context": {"session_id": "s"}}
    first = httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).json()

    target.upgrade(METRICS, timeout=30)
    assert _statuses(target) == [(1, "superseded"), (2, "deployed")]
    assert "metrics" in target.forwarded_ports()

    with pytest.raises(StepFailed, match="readiness probe") as failed:
        target.upgrade(BROKEN, timeout=1.5)
    assert failed.value.step == "rollout.ready"
    # Helm leaves the revision before deployed until something supersedes it
    assert _statuses(target) == [(1, "superseded"), (2, "deployed"), (3, "failed")]
    assert target.history()[2].description.startswith("Upgrade failed: ")

    made = target.rollback(timeout=30)
    assert (made.number, made.status, made.description) == (4, "deployed", "Rollback to 2")
    assert _statuses(target) == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "failed"),
        (4, "deployed"),
    ]
    assert target.history()[3].values == METRICS
    probe = target.deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["port"] == "health"
    listed = httpx.get(target.url() + "/api/v1/receipts", headers=HEADERS).json()["receipts"]
    assert first["receipt_id"] in [r["receipt_id"] for r in listed]

    # another process (the next notebook) sees the same history
    assert _statuses(LocalTarget.open(target.workdir)) == _statuses(target)


def test_rollback_to_a_named_revision_and_to_one_that_is_not_kept(target: LocalTarget) -> None:
    target.install(AUTH)
    target.upgrade(METRICS, timeout=30)
    made = target.rollback(revision=1, timeout=30)
    assert (made.number, made.description, made.values) == (3, "Rollback to 1", AUTH)
    assert "metrics" not in target.forwarded_ports()
    with pytest.raises(StepFailed, match="revision 7") as refused:
        target.rollback(revision=7)
    assert "helm history" in refused.value.fix


def test_history_is_pruned_like_helms_and_goes_with_uninstall(target: LocalTarget) -> None:
    target.install(AUTH)
    for _ in range(HISTORY_MAX):
        target.install(AUTH)
    numbers = [r.number for r in target.history()]
    assert numbers == list(range(2, HISTORY_MAX + 2))
    target.uninstall()
    assert target.history() == []
    with pytest.raises(TargetUnavailable):
        target.rollback()
    target.install(AUTH)
    assert _statuses(target) == [(1, "deployed")]
