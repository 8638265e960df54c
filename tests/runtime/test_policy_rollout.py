"""Signed policy rollout through the wake hint: sign, tamper, refuse, keep serving, re-sign."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helm_runbook.cli import main as cli_main
from helm_runbook.runtime.context import Runtime
from helm_runbook.tools import policy
from tests.conftest import SERVICE_KEY, TENANT_HEADERS, RuntimeFactory, write_policy

ClientFor = Callable[[Runtime], TestClient]

SERVICE = {"Authorization": f"Bearer {SERVICE_KEY}"}
EVAL = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "rollout",
    "args": {"path": "/etc/hostname"},
}


def _pack(policy_dir: Path, actions: list[dict[str, object]]) -> None:
    doc = {"pack_id": "helm-chart-reference-pack", "version": 1, "runtime_actions": actions}
    (policy_dir / "reference-pack.json").write_text(json.dumps(doc))


def _verdict(client: TestClient) -> str:
    return str(
        client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL).json()["reason_code"]
        or "ALLOW"
    )


def test_wake_route_contract(make_runtime: RuntimeFactory, client_for: ClientFor) -> None:
    client = client_for(make_runtime())
    assert client.post("/internal/policy/reconcile").status_code == 401
    wrong = client.post("/internal/policy/reconcile", headers={"Authorization": "Bearer nope"})
    assert wrong.json()["detail"] == "Invalid service API key"
    assert client.get("/internal/policy/reconcile", headers=SERVICE).status_code == 405
    with_body = client.post(
        "/internal/policy/reconcile", headers=SERVICE, content=b'{"policy":"x"}'
    )
    assert with_body.status_code == 400
    first = client.post("/internal/policy/reconcile", headers=SERVICE).json()
    assert (first["reconcile_status"], first["snapshot_status"], first["audit_event"]) == (
        "no_change", "active", "policy_reconcile",
    )  # fmt: skip


def test_signed_rollout_refuses_tampering_and_keeps_serving(
    make_runtime: RuntimeFactory, client_for: ClientFor, tmp_path: Path
) -> None:
    key = policy.keygen(tmp_path / "policy.key")
    assert (tmp_path / "policy.key").stat().st_mode & 0o777 == 0o600
    policy_dir = tmp_path / "policy"
    toml = write_policy(policy_dir, [])
    signer = policy.load_policy_signer(tmp_path / "policy.key")
    policy.sign_policy(toml, signer, mount_dir=policy_dir)
    env = {"HELM_POLICY_SIGNATURE_REQUIRED": "true", "HELM_POLICY_TRUST_PUBLIC_KEY": key.public_key}
    runtime = make_runtime([], env=env)  # rewrites the same (empty) pack; signature still matches
    client = client_for(runtime)
    assert _verdict(client) == "PDP_DENY"

    _pack(policy_dir, [{"action": "file_read"}])  # widened but NOT re-signed
    refused = client.post("/internal/policy/reconcile", headers=SERVICE).json()
    assert refused["reconcile_status"] == "validate_error"
    assert "signature" in refused["reason"]
    assert refused["snapshot_status"] == "active"
    assert _verdict(client) == "PDP_DENY", "a refused update must never widen what is allowed"

    policy.sign_policy(toml, signer, mount_dir=policy_dir)
    assert policy.verify_policy(toml, key.public_key, mount_dir=policy_dir)
    applied = client.post("/internal/policy/reconcile", headers=SERVICE).json()
    assert (applied["reconcile_status"], applied["updated"]) == ("ok", True)
    assert _verdict(client) == "ALLOW"
    again = client.post("/internal/policy/reconcile", headers=SERVICE).json()
    assert (again["reconcile_status"], again["updated"]) == ("no_change", False)


def test_policy_cli_keygen_sign_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = write_policy(tmp_path / "policy", [{"action": "LLM_INFERENCE"}])
    assert cli_main(["policy", "keygen", "--out", str(tmp_path / "k")]) == 0
    seed = (tmp_path / "k").read_text()
    out = capsys.readouterr().out
    assert seed not in out, "the seed must never be printed"
    public = next(word for word in out.split() if re.fullmatch(r"[0-9a-f]{64}", word))
    assert cli_main(["policy", "sign", str(toml), "--key-file", str(tmp_path / "k")]) == 0
    assert cli_main(["policy", "verify", str(toml), "--public-key", public]) == 0
    _pack(tmp_path / "policy", [])
    assert cli_main(["policy", "verify", str(toml), "--public-key", public]) == 5  # does not verify
    assert "fix:" in capsys.readouterr().err
    assert cli_main(["policy", "keygen", "--out", str(tmp_path / "k")]) == 2, (
        "never overwrite a key"
    )


def test_keygen_quiet_prints_only_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """For ``PUB=$(helm-runbook policy keygen --out k --quiet)``: one line, the 64-hex public key."""
    assert cli_main(["policy", "keygen", "--out", str(tmp_path / "k"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"[0-9a-f]{64}\n", out), out
    assert out.strip() == policy.load_policy_signer(tmp_path / "k").public_key_hex


def test_a_seed_file_others_can_read_is_refused_with_the_chmod_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helm_runbook.errors import InputError

    policy.keygen(tmp_path / "k")
    (tmp_path / "k").chmod(0o644)
    with pytest.raises(InputError, match="mode 0644") as caught:
        policy.load_policy_signer(tmp_path / "k")
    assert caught.value.fix.startswith(f"chmod 600 {tmp_path / 'k'}")
    toml = write_policy(tmp_path / "policy", [])
    assert cli_main(["policy", "sign", str(toml), "--key-file", str(tmp_path / "k")]) == 2
    assert "chmod 600" in capsys.readouterr().err
    (tmp_path / "k").chmod(0o600)
    assert cli_main(["policy", "sign", str(toml), "--key-file", str(tmp_path / "k")]) == 0
