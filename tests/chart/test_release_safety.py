"""The chart on a real cluster: the data claim outlives ``helm uninstall``, one writer per claim,
no empty database URL, the placeholder upstream named in NOTES, and NOTES that are true for each storage layout."""

from __future__ import annotations

from typing import Any

import pytest

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import install_release
from helm_runbook.errors import RenderError
from tests.chart.conftest import PRODUCTION, env_of, template

PG = {"helm.storage.type": "postgres", "helm.storage.postgres.existingSecret": "db"}


def test_the_data_claim_is_kept_on_uninstall_unless_opted_out() -> None:
    claim = template().get("PersistentVolumeClaim")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    opted_out = template({"persistence.keepOnUninstall": False}).get("PersistentVolumeClaim")
    assert "annotations" not in opted_out["metadata"]


def test_install_dry_run_keeps_the_claim_too() -> None:
    release = install_release(CHART_DIR, "helm-ai-kernel", {}, namespace="ns1", dry_run="client")
    assert (
        release.get("PersistentVolumeClaim")["metadata"]["annotations"]["helm.sh/resource-policy"]
        == "keep"
    )


@pytest.mark.parametrize(
    ("dotted", "strategy"),
    [({}, {"type": "Recreate"}),
     ({"persistence.accessModes": ["ReadWriteOncePod"]}, {"type": "Recreate"}),
     ({"persistence.existingClaim": "mine"}, {"type": "Recreate"}),
     ({"persistence.enabled": False}, None),
     ({"persistence.accessModes": ["ReadWriteMany"]}, None)],
)  # fmt: skip
def test_a_single_writer_claim_deploys_with_recreate(dotted: dict[str, Any], strategy: Any) -> None:
    assert template(dotted).get("Deployment")["spec"].get("strategy") == strategy


def test_replicas_on_one_read_write_once_claim_are_refused() -> None:
    with pytest.raises(
        RenderError,
        match=r"replicaCount=2 with persistence.enabled=true and accessModes ReadWriteOnce",
    ):
        template({"replicaCount": 2, **PG})


@pytest.mark.parametrize(
    "layout", [{"persistence.enabled": False}, {"persistence.accessModes": ["ReadWriteMany"]}]
)
def test_replicas_on_postgres_without_a_single_writer_claim_render(layout: dict[str, Any]) -> None:
    deployment = template({"replicaCount": 3, **PG, **layout}).get("Deployment")
    assert deployment["spec"]["replicas"] == 3 and "strategy" not in deployment["spec"]


def test_production_renders_the_placeholder_upstream_and_its_notes_name_it() -> None:
    """As upstream's chart and the guide do: the release renders; NOTES says where it matters."""
    placeholder = {"helm.proxy.upstream": "https://your-upstream.example/v1"}
    release = template(placeholder, PRODUCTION)
    env = env_of(release.get("Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert env["HELM_UPSTREAM_URL"] == "https://your-upstream.example/v1"
    assert "points at no real upstream" in release.notes
    assert "--set helm.proxy.upstream=https://<your-upstream>/v1" in release.notes
    assert "no real upstream" not in template(PRODUCTION).notes  # a real upstream: nothing said
    off = template({**placeholder, "helm.proxy.enabled": False}, PRODUCTION)
    assert "placeholder" not in off.notes and "HELM_UPSTREAM_URL" not in env_of(
        off.get("Deployment")["spec"]["template"]["spec"]["containers"][0]
    )


def test_postgres_needs_a_host_or_a_secret_in_every_mode() -> None:
    with pytest.raises(
        RenderError,
        match=r"helm.storage.type=postgres requires .*existingSecret .* or helm.storage.postgres.host",
    ):
        template({"helm.storage.type": "postgres"})
    release = template(
        {"helm.storage.type": "postgres", "helm.storage.postgres.host": "db.internal"}
    )
    env = {
        e["name"]: e.get("value")
        for e in release.get("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DATABASE_URL"].startswith("postgres://helm:@db.internal:5432/helm")


# (values, statements NOTES must make, statements it must not make)
NOTES_CASES = [
    ({}, ["receipts in SQLite on PVC helm-ai-kernel-data: they survive pod restarts",
          "helm uninstall keeps PVC helm-ai-kernel-data", "kubectl --namespace ns1 delete pvc helm-ai-kernel-data",
          "refusing silent rotation", "The chart-generated signing key goes with the release"], ["lost"]),
    ({"helm.signing.existingSecret": "helm-signing"}, ["helm uninstall keeps PVC"], ["chart-generated signing key"]),
    ({"persistence.enabled": False}, ["receipts in SQLite on an emptyDir: they are lost when the pod restarts"],
     ["Uninstall", "survive"]),
    (PG, ["receipts in PostgreSQL (DATABASE_URL from Secret db): they survive pod restarts and reinstalls",
          "Data: /data (root.key) on PVC helm-ai-kernel-data", "helm uninstall keeps PVC"], ["lost"]),
    ({**PG, "persistence.enabled": False},
     ["receipts in PostgreSQL", "/data is an emptyDir: root.key is copied again from the signing Secret"],
     ["lost", "Uninstall"]),
    ({"persistence.existingClaim": "mine"}, ["on PVC mine", "PVC mine is yours (persistence.existingClaim)"],
     ["delete pvc", "lost"]),
    ({"persistence.keepOnUninstall": False}, ["helm uninstall deletes PVC helm-ai-kernel-data and the data on it"],
     ["keeps PVC"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("dotted", "says", "never"), NOTES_CASES, ids=[str(c[0]) for c in NOTES_CASES]
)
def test_notes_are_true_for_each_storage_layout(
    dotted: dict[str, Any], says: list[str], never: list[str]
) -> None:
    notes = template(dotted).notes
    for statement in says:
        assert statement in notes
    for statement in never:
        assert statement not in notes
