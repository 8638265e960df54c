"""Day-two steps on the local target: the upgrade diff, a failed upgrade drill, the traffic check."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helm_runbook.chart.values import merge_values
from helm_runbook.errors import StepFailed
from helm_runbook.steps.release import (
    Traffic,
    deployed_values,
    diff_upgrade,
    history,
    receipts_kept,
    rollback,
    signing_key_continuity,
    upgrade,
)
from helm_runbook.targets.local import LocalTarget

pytestmark = pytest.mark.slow
OLD_KEY, NEW_KEY = "ab" * 32, "cd" * 32
VALUES: dict[str, Any] = {"helm": {"auth": {"existingSecret": "helm-auth"}, "signing": {"existingSecret": "helm-signing"}},
          "persistence": {"enabled": True}}  # fmt: skip


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalTarget]:
    local = LocalTarget(tmp_path)
    local.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    local.create_secret("helm-signing", {"signing-key": OLD_KEY})
    yield local
    local.close()


def test_the_diff_names_changed_fields_by_object_and_masks_secret_data(target: LocalTarget) -> None:
    inline: dict[str, Any] = {"helm": {"signing": {"existingSecret": "", "key": OLD_KEY}}}
    target.install(merge_values(VALUES, inline))
    changes = {"helm": {"signing": {"key": NEW_KEY}, "metrics": {"enabled": True}}}
    report = diff_upgrade(target, deployed_values(target, changes=changes))
    fields = report.values["fields"]
    assert isinstance(fields, list)
    assert any(f.startswith("Deployment/") and "HELM_METRICS_ENABLED" in f for f in fields)
    secret_rows = [row for row in report.rows if str(row[0]).startswith("Secret/")]
    assert secret_rows and all(str(row[3]).startswith("sha256:") for row in secret_rows)
    shown = json.dumps(report.rows)
    for key in (OLD_KEY, NEW_KEY):
        assert key not in shown and base64.b64encode(key.encode()).decode() not in shown
    assert report.values["against"] == 1


def test_a_failed_upgrade_drill_names_the_cause_and_a_rollback_recovers(
    target: LocalTarget,
) -> None:
    target.install(VALUES)
    target.wait_ready()
    traffic = Traffic(target, interval=0.05).start()
    broken = deployed_values(target, changes={"probes": {"readiness": {"httpGet": {"port": 9191}}}})
    drill = upgrade(target, broken, timeout=1.5, expect_failure=True)
    assert (drill.values["revision"], drill.values["status"], drill.values["finding"]) == (
        2,
        "failed",
        "readiness",
    )
    assert "9191" in str(drill.values["finding_seen"])
    assert "--wait --timeout 1.5s" in drill.command and "--install" not in drill.command
    with pytest.raises(StepFailed, match=r"diagnose\(\): the readiness probe checks port 9191"):
        upgrade(target, broken, timeout=1.0)  # not a drill: the failure is the step's
    done = rollback(target, revision=1)
    assert (done.values["revision"], done.values["status"]) == (4, "deployed")
    assert history(target).values["statuses"] == ["superseded", "failed", "failed", "deployed"]
    kept = receipts_kept(target, traffic, stop=True)
    assert kept.values["lost"] == 0 and kept.values["acknowledged"] == kept.values["listed"]
    assert isinstance(kept.values["acknowledged"], int) and kept.values["acknowledged"] > 0


def test_an_upgrade_that_becomes_ready_is_not_a_successful_drill(target: LocalTarget) -> None:
    target.install(VALUES)
    with pytest.raises(StepFailed, match="break readiness"):
        upgrade(target, VALUES, timeout=30, expect_failure=True)


def test_a_changed_signing_secret_is_refused_then_restored_with_the_same_trust_root(
    target: LocalTarget,
) -> None:
    target.install(VALUES)
    target.wait_ready()
    report = signing_key_continuity(target, timeout=30)
    assert report.values["refused"] is True
    assert report.values["trust_root"] != report.values["rotated_trust_root"]
    assert target.secrets["helm-signing"]["signing-key"] == OLD_KEY.encode()
    assert (target.pvc_dir("helm-ai-kernel-data") / "root.key").read_bytes() == OLD_KEY.encode()
    assert "refusing silent rotation" in json.dumps(report.rows)
    assert OLD_KEY not in json.dumps(report.rows) and OLD_KEY not in json.dumps(report.values)
    target.wait_ready(5)
