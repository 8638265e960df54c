"""The no-widening rule: a refused policy update never changes a verdict.

Hypothesis drives arbitrary damage to a signed mounted policy (tampered TOML or pack, wrong key,
missing/truncated/non-hex signature, unparseable bundle, a pack path escaping its directory);
every refused update must leave every probe's verdict exactly as it was.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from helm_runbook.formats.keys import Signer
from helm_runbook.runtime.guardian import DecisionRequest, decide
from helm_runbook.runtime.policy.reconciler import Reconciler, ReconcileSettings
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import MountedFileSource
from helm_runbook.standins.process import RuntimeProcess
from helm_runbook.tools.policy import sign_policy
from tests.conftest import TENANT_HEADERS, default_env, write_policy

SCOPE = PolicyScope()
KEY = Signer(SigningKey(b"\x11" * 32), key_id="policy")
OTHER = Signer(SigningKey(b"\x22" * 32), key_id="policy")
GOOD = [{"action": "file_read", "expression": 'input.effect.params.args.path == "/etc/hostname"'}]
PROBES = [
    ("file_read", "E1", {"args": {"path": "/etc/hostname"}}),
    ("file_read", "E1", {"args": {"path": "/etc/shadow"}}),
    ("shell", "E3", {"args": {}}),
    ("EXECUTE_TOOL", "file_read", {"args": {}}),
]


def _verdicts(snapshots: SnapshotStore) -> list[tuple[str, str]]:
    snap = snapshots.get(SCOPE)
    out = []
    for action, resource, ctx in PROBES:
        d = decide(snap, DecisionRequest("p", action, resource, ctx, SCOPE), time.time_ns())
        out.append((d.verdict, d.reason_code))
    return out


def _damage(policy_dir: Path, kind: str, payload: str) -> None:
    toml, pack, sig = (
        policy_dir / n
        for n in ("serve-policy.toml", "reference-pack.json", "serve-policy.toml.sig")
    )
    wide = json.dumps(
        {
            "pack_id": "p",
            "version": 1,
            "runtime_actions": [{"action": "shell"}, {"action": "file_read"}],
        }
    )
    if kind == "widen_pack_unsigned":
        pack.write_text(wide)
    elif kind == "tamper_toml":
        toml.write_text(
            toml.read_text().replace('profile = "kubernetes"', f'profile = "k{payload}"')
        )
    elif kind == "sign_with_wrong_key":
        pack.write_text(wide)
        sign_policy(toml, OTHER, mount_dir=policy_dir)
    elif kind == "remove_signature":
        sig.unlink()
    elif kind == "truncate_signature":
        sig.write_text(sig.read_text()[: max(0, len(payload) % 127)])
    elif kind == "non_hex_signature":
        sig.write_text("zz" * 64)
    elif kind == "unparseable_bundle":
        toml.write_text("name = [unterminated" + payload)
    elif kind == "pack_escapes_directory":
        toml.write_text(toml.read_text().replace("./reference-pack.json", "../outside.json"))
        (policy_dir.parent / "outside.json").write_text(wide)
    elif kind == "garbage_pack":
        pack.write_text("{" + payload)


DAMAGE = st.sampled_from(
    ["widen_pack_unsigned", "tamper_toml", "sign_with_wrong_key", "remove_signature", "truncate_signature",
     "non_hex_signature", "unparseable_bundle", "pack_escapes_directory", "garbage_pack"]
)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=DAMAGE, payload=st.text(alphabet="abcdef0123", min_size=0, max_size=12))
def test_no_refused_update_changes_a_verdict(
    tmp_path_factory: pytest.TempPathFactory, kind: str, payload: str
) -> None:
    policy_dir = tmp_path_factory.mktemp("nw") / "policy"
    toml = write_policy(policy_dir, GOOD)
    sign_policy(toml, KEY, mount_dir=policy_dir)
    snapshots = SnapshotStore()
    settings_ = ReconcileSettings(signature_required=True, trust_public_key=KEY.public_key_hex)
    reconciler = Reconciler(MountedFileSource(toml), snapshots, settings_)
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "ok"
    before = _verdicts(snapshots)
    _damage(policy_dir, kind, payload)
    status = reconciler.reconcile(SCOPE)
    assert status["reconcile_status"] != "ok", f"{kind} was accepted"
    assert status["snapshot_status"] == "active"
    # A signature-only change leaves the hash and epoch alone: upstream reports no_change (the
    # installed bytes were verified when installed); anything else is a refusal with a reason.
    assert status["reconcile_status"] == "no_change" or status["reason"], "a refusal must say why"
    assert _verdicts(snapshots) == before


def test_lkg_expires_to_policy_not_ready_and_deny_mode_invalidates_at_once(tmp_path: Path) -> None:
    clock = [time.time()]  # decisions read the wall clock: the fake one starts there
    for mode, expect_after_fault in (("keepLastKnownGood", "active"), ("deny", "invalid")):
        toml = write_policy(tmp_path / mode, GOOD)
        snapshots = SnapshotStore()
        cfg = ReconcileSettings(on_invalid_update=mode, last_known_good_max_age_s=60)
        reconciler = Reconciler(MountedFileSource(toml), snapshots, cfg, clock=lambda: clock[0])
        reconciler.reconcile(SCOPE)
        toml.write_text("broken = [")
        assert reconciler.reconcile(SCOPE)["snapshot_status"] == expect_after_fault
        clock[0] += 61
        expired = reconciler.reconcile(SCOPE)
        assert expired["snapshot_status"] == "invalid"
        assert _verdicts(snapshots)[0] == ("DENY", "POLICY_NOT_READY")


def test_lkg_window_ends_at_decision_time_not_at_the_next_reconcile(tmp_path: Path) -> None:
    """The window is lastKnownGoodMaxAge exactly: a decision after it denies although no
    reconcile ran since, and the reconcile that follows starts from that (a source back with
    the same head reloads it: ``ok``, never ``no_change`` on an expired snapshot)."""
    clock = [time.time()]
    toml = write_policy(tmp_path, GOOD)
    snapshots = SnapshotStore()
    cfg = ReconcileSettings(last_known_good_max_age_s=60)
    reconciler = Reconciler(MountedFileSource(toml), snapshots, cfg, clock=lambda: clock[0])
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "ok"
    good = toml.read_text()
    toml.write_text("broken = [")
    assert reconciler.reconcile(SCOPE)["snapshot_status"] == "active"
    kept = snapshots.get(SCOPE)
    assert kept is not None and kept.serves_until == kept.last_verified_at + 60
    assert _verdicts(snapshots)[0] == ("ALLOW", "")  # inside the window: last known good serves
    at_end = DecisionRequest("p", *PROBES[0], SCOPE)
    late = decide(kept, at_end, int((kept.last_verified_at + 60) * 1e9))
    assert (late.verdict, late.reason_code) == ("DENY", "POLICY_NOT_READY")
    assert late.reason.startswith("last-known-good snapshot expired after 60s")
    early = decide(kept, at_end, int((kept.last_verified_at + 59.9) * 1e9))
    assert early.verdict == "ALLOW"
    clock[0] += 61
    toml.write_text(good)  # the source is back with the head that was installed
    os.utime(toml, ns=(kept.policy_epoch, kept.policy_epoch))
    back = reconciler.reconcile(SCOPE)
    assert (back["reconcile_status"], back["snapshot_status"]) == ("ok", "active"), back
    assert snapshots.get(SCOPE).serves_until is None  # type: ignore[union-attr]


@pytest.mark.slow
def test_signed_change_is_live_within_one_poll_interval(tmp_path: Path) -> None:
    import httpx

    policy_dir = tmp_path / "policy"
    toml = write_policy(policy_dir, [])
    env = {**default_env(), "HELM_POLICY_POLL_INTERVAL": "200ms"}
    body = {
        "tool": "file_read",
        "effect_level": "E1",
        "session_id": "poll",
        "args": {"path": "/etc/hostname"},
    }
    with RuntimeProcess(toml, tmp_path / "data", env=env) as rt:
        first = httpx.post(f"{rt.url}/api/v1/evaluate", headers=TENANT_HEADERS, json=body).json()
        assert first["reason_code"] == "PDP_DENY"
        write_policy(policy_dir, GOOD)
        changed_at = time.monotonic()
        verdict = first["verdict"]
        while verdict != "ALLOW" and time.monotonic() - changed_at < 5:
            time.sleep(0.05)
            verdict = httpx.post(
                f"{rt.url}/api/v1/evaluate", headers=TENANT_HEADERS, json=body
            ).json()["verdict"]
        assert verdict == "ALLOW"  # live within 5 s (one 200 ms poll interval plus any load)


def test_concurrent_wake_hints_and_polls_serialise_cleanly(tmp_path: Path) -> None:
    """Many reconciles at once (wake hints racing the poll loop) while the policy changes: every
    status is well-formed, at most one ``ok`` per distinct policy, and the end state is the last policy."""
    import threading

    toml = write_policy(tmp_path / "policy", [])
    snapshots = SnapshotStore()
    reconciler = Reconciler(MountedFileSource(toml), snapshots, ReconcileSettings())
    reconciler.reconcile(SCOPE)
    statuses: list[dict[str, object]] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(30):
            status = reconciler.reconcile(SCOPE)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for n in range(5):
        write_policy(tmp_path / "policy", [{"action": f"tool_{n}"}])
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    final = reconciler.reconcile(SCOPE)
    # A reconcile may read the two files mid-write (write_policy is not atomic): a torn read is
    # refused as validate_error (pack changed after the head was read), never installed.
    assert {s["reconcile_status"] for s in statuses} <= {
        "ok",
        "no_change",
        "compile_error",
        "source_error",
        "validate_error",
    }
    oks = [(s["policy_hash"], s["policy_epoch"]) for s in statuses if s["reconcile_status"] == "ok"]
    assert len(oks) == len(set(oks)), "the same head (hash, epoch) must never be installed twice"
    assert snapshots.get(SCOPE).policy.allow == frozenset({"tool_4"})  # type: ignore[union-attr]
    assert final["snapshot_status"] == "active"
