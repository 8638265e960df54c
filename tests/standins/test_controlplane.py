"""The stand-in control plane against the runtime's own ``controlplane`` source and reconciler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from helm_runbook.errors import InputError, SecretMaterialMissing
from helm_runbook.formats.keys import Signer
from helm_runbook.runtime.policy.reconciler import Reconciler, ReconcileSettings
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import ControlPlaneSource
from helm_runbook.standins.controlplane import (
    ControlPlaneServer,
    ControlPlaneState,
    load_token,
    token_fingerprint,
)
from helm_runbook.steps.policy import SERVE_POLICY

TOKEN = "cp-test-token-0123456789"
SCOPE = PolicyScope.of("default", "default")


def _pack(action: str) -> bytes:
    doc = {"pack_id": "p", "label": "t", "version": 1, "runtime_actions": [
        {"action": action, "expression": "true", "description": "allowed"}]}  # fmt: skip
    return (json.dumps(doc, indent=2) + "\n").encode()


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """The pod's policy mount: the pack the runtime reads beside bundle_ref."""
    (tmp_path / "reference-pack.json").write_bytes(_pack("read_file"))
    return tmp_path


def _reconciler(url: str, token: str | None, public_key: str, *, clock: list[float]) -> Reconciler:
    settings = ReconcileSettings(signature_required=True, trust_public_key=public_key,
                                 last_known_good_max_age_s=30)  # fmt: skip
    return Reconciler(ControlPlaneSource(url, token), SnapshotStore(), settings,
                      clock=lambda: clock[0])  # fmt: skip


def _close(rec: Reconciler) -> None:
    assert isinstance(rec.source, ControlPlaneSource)
    rec.source.close()


def test_signed_versions_install_and_faults_are_refused_with_the_reason(mount: Path) -> None:
    signer = Signer(SigningKey(b"\x01" * 32), "policy")
    state = ControlPlaneState(TOKEN, mount_dir=mount)
    clock = [1000.0]
    with ControlPlaneServer(state) as cp:
        rec = _reconciler(cp.url, TOKEN, signer.public_key_hex, clock=clock)
        v1 = state.publish(SERVE_POLICY.encode(), _pack("read_file"), signer)
        status = rec.reconcile(SCOPE)
        assert (status["reconcile_status"], status["policy_epoch"]) == ("ok", 1)
        assert status["policy_hash"] == v1.policy_hash
        assert rec.reconcile(SCOPE)["reconcile_status"] == "no_change"

        v2 = state.publish(
            SERVE_POLICY.replace("helm-chart", "v2").encode(), _pack("read_file"), signer
        )
        assert v2.policy_epoch == 2
        assert rec.reconcile(SCOPE)["policy_epoch"] == 2

        reasons = {}
        for fault in ("unsigned", "tampered", "wrong-hash"):
            state.publish(SERVE_POLICY.encode(), _pack("read_file"), signer, fault=fault)
            status = rec.reconcile(SCOPE)
            assert status["reconcile_status"] == "validate_error", fault
            assert (status["snapshot_status"], status["policy_epoch"]) == ("active", 2), fault
            reasons[fault] = status["reason"]
        assert "signature required" in reasons["unsigned"]
        assert "does not verify" in reasons["tampered"]
        assert "hash mismatch" in reasons["wrong-hash"]

        state.down = True
        status = rec.reconcile(SCOPE)
        assert (status["reconcile_status"], status["snapshot_status"]) == ("source_error", "active")
        clock[0] += 31  # past lastKnownGoodMaxAge: fail closed
        status = rec.reconcile(SCOPE)
        assert status["snapshot_status"] == "invalid"
        assert "503" in status["reason"]
        state.down = False
        state.publish(SERVE_POLICY.encode(), _pack("read_file"), signer)
        status = rec.reconcile(SCOPE)
        assert (status["reconcile_status"], status["snapshot_status"]) == ("ok", "active")
        _close(rec)


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_refused_with_401(mount: Path, token: str | None) -> None:
    signer = Signer(SigningKey(b"\x02" * 32), "policy")
    state = ControlPlaneState(TOKEN, mount_dir=mount)
    state.publish(SERVE_POLICY.encode(), _pack("read_file"), signer)
    with ControlPlaneServer(state) as cp:
        rec = _reconciler(cp.url, token, signer.public_key_hex, clock=[0.0])
        status = rec.reconcile(SCOPE)
        _close(rec)
        assert status["reconcile_status"] == "source_error"
        assert "401" in status["reason"]
        assert "HELM_POLICY_BEARER_TOKEN" in status["reason"]
        assert "helm.policy.source.controlplane.auth" in status["reason"]
        assert ("is not set" if token is None else "was refused") in status["reason"]
        assert TOKEN not in status["reason"]
        plain = httpx.get(cp.url + "/api/v1/policy/head", params={"tenant_id": "default"})
        assert plain.status_code == 401
    assert state.requests and not any(r["authorised"] for r in state.requests)
    assert TOKEN not in json.dumps(state.requests)


def test_token_comes_from_a_private_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HELM_RUNBOOK_CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(SecretMaterialMissing, match="HELM_RUNBOOK_CONTROLPLANE_TOKEN"):
        load_token()
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    with pytest.raises(InputError, match="chmod 600"):
        load_token(path)
    path.chmod(0o600)
    assert load_token(path) == TOKEN
    monkeypatch.setenv("HELM_RUNBOOK_CONTROLPLANE_TOKEN", TOKEN)
    assert load_token() == TOKEN
    assert TOKEN not in token_fingerprint(TOKEN)


def test_cli_serve_refuses_without_a_token_and_never_takes_it_from_argv(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_RUNBOOK_")}
    cli = [sys.executable, "-m", "helm_runbook", "controlplane", "serve"]
    done = subprocess.run([*cli, str(tmp_path / "serve-policy.toml")], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "HELM_RUNBOOK_CONTROLPLANE_TOKEN" in done.stderr
    helped = subprocess.run([*cli, "--help"], capture_output=True, text=True, timeout=60)
    assert "--token " not in helped.stdout
