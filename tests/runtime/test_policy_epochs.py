"""Policy epochs only move forward and the control-plane client is bounded (issue 30): a replayed
older signed head is refused with a reason, also after a restart; an epoch the signature does not
cover is refused; a rollback is a new epoch; a trickled or oversized head is refused within the
deadline and starts the last-known-good window."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from helm_runbook.formats.keys import Signer
from helm_runbook.runtime.policy.epochs import InstalledEpochs
from helm_runbook.runtime.policy.reconciler import Reconciler, ReconcileSettings
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import ControlPlaneSource
from helm_runbook.standins.background import BackgroundServer
from helm_runbook.standins.controlplane import ControlPlaneServer, ControlPlaneState
from helm_runbook.steps.policy import SERVE_POLICY

TOKEN = "cp-test-token-0123456789"
SCOPE = PolicyScope.of("default", "default")
SIGNER = Signer(SigningKey(b"\x05" * 32), "policy")
PACK = json.dumps({"pack_id": "p", "version": 1, "runtime_actions": [{"action": "read_file"}]})


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[ControlPlaneState, str]]:
    (tmp_path / "reference-pack.json").write_text(PACK)
    state = ControlPlaneState(TOKEN, mount_dir=tmp_path)
    with ControlPlaneServer(state) as cp:
        yield state, cp.url


_SOURCES: list[ControlPlaneSource] = []


@pytest.fixture(autouse=True)
def _close_sources() -> Iterator[None]:
    yield
    while _SOURCES:
        _SOURCES.pop().close()


def _source(url: str, deadline: float = 10.0) -> ControlPlaneSource:
    _SOURCES.append(ControlPlaneSource(url, TOKEN, deadline_s=deadline))
    return _SOURCES[-1]


def _reconciler(url: str, epochs: InstalledEpochs | None = None, **settings: float) -> Reconciler:
    config = ReconcileSettings(signature_required=True, trust_public_key=SIGNER.public_key_hex,
                               last_known_good_max_age_s=settings.get("max_age", 600.0))  # fmt: skip
    return Reconciler(_source(url, settings.get("deadline", 10.0)), SnapshotStore(), config,
                      epochs=epochs)  # fmt: skip


def _publish(state: ControlPlaneState, version: str) -> int:
    policy = SERVE_POLICY.replace("helm-chart", version).encode()
    return state.publish(policy, PACK.encode(), SIGNER).policy_epoch


def test_a_replayed_older_signed_head_is_refused_and_the_epoch_stays(
    plane: tuple[ControlPlaneState, str], tmp_path: Path
) -> None:
    state, url = plane
    epochs = InstalledEpochs(tmp_path / "policy-epochs.json")
    rec = _reconciler(url, epochs)
    _publish(state, "v1")
    assert rec.reconcile(SCOPE)["reconcile_status"] == "ok"
    _publish(state, "v2")
    v2 = rec.reconcile(SCOPE)
    assert (v2["reconcile_status"], v2["policy_epoch"]) == ("ok", 2)
    state.versions.append(state.versions[0])  # the control plane (or an impostor) serves v1 again
    replay = rec.reconcile(SCOPE)
    assert replay["reconcile_status"] == "validate_error", replay
    assert "not above the installed epoch 2" in replay["reason"]
    assert (replay["policy_epoch"], replay["policy_hash"]) == (2, v2["policy_hash"])
    assert (replay["snapshot_status"], replay["desired_policy_epoch"]) == ("active", 1)

    # a restart does not forget: a fresh reconciler over the same data dir refuses v1 too
    restarted = _reconciler(url, InstalledEpochs(tmp_path / "policy-epochs.json"))
    again = restarted.reconcile(SCOPE)
    assert again["reconcile_status"] == "validate_error" and "epoch 2" in again["reason"]
    assert (tmp_path / "policy-epochs.json").stat().st_mode & 0o777 == 0o600

    # a rollback is published as a new epoch with the old content
    state.versions.pop()
    rollback = state.publish(state.versions[0].bundle, PACK.encode(), SIGNER)
    assert rollback.policy_epoch == 3
    assert rec.reconcile(SCOPE)["reconcile_status"] == "ok"
    assert restarted.reconcile(SCOPE)["policy_epoch"] == 3


def test_an_epoch_the_signature_does_not_cover_is_refused(
    plane: tuple[ControlPlaneState, str],
) -> None:
    state, url = plane
    rec = _reconciler(url)
    _publish(state, "v1")
    assert rec.reconcile(SCOPE)["reconcile_status"] == "ok"
    v1 = state.versions[0]
    # the same signed head, its epoch raised by whoever answers for the control plane
    state.versions.append(type(v1)(v1.policy_epoch + 5, v1.policy_hash, v1.bundle_ref,
                                   v1.source_refs, v1.signature, v1.bundle))  # fmt: skip
    status = rec.reconcile(SCOPE)
    assert status["reconcile_status"] == "validate_error", status
    assert "not bound by its signature" in status["reason"]
    assert status["policy_epoch"] == 1


def test_an_equal_epoch_with_other_content_is_refused(plane: tuple[ControlPlaneState, str]) -> None:
    state, url = plane
    rec = _reconciler(url)
    _publish(state, "v1")
    assert rec.reconcile(SCOPE)["reconcile_status"] == "ok"
    state.versions.clear()
    _publish(state, "other")  # a control plane that lost its state starts again at epoch 1
    status = rec.reconcile(SCOPE)
    assert status["reconcile_status"] == "validate_error" and "epoch 1" in status["reason"]


# -- the client: deadline and byte caps ------------------------------------------------------


def _hostile_plane(head: Response | None = None, *, drip_s: float = 0.0) -> Starlette:
    async def trickle() -> AsyncIterator[bytes]:
        import asyncio

        for byte in b'{"policy_epoch": 9, "policy_hash": "sha256:x", "bundle_ref": "b"}':
            await asyncio.sleep(drip_s)
            yield bytes([byte])

    async def serve(request: Request) -> Response:
        return head if head is not None else StreamingResponse(trickle())

    return Starlette(routes=[Route("/api/v1/policy/head", serve)])


def test_a_trickled_head_is_refused_within_the_deadline_and_starts_the_window(
    plane: tuple[ControlPlaneState, str],
) -> None:
    state, url = plane
    _publish(state, "v1")
    clock = [1000.0]
    rec = _reconciler(url, max_age=30)
    rec.clock = lambda: clock[0]
    assert rec.reconcile(SCOPE)["reconcile_status"] == "ok"
    with BackgroundServer(_hostile_plane(drip_s=0.3)) as slow:
        rec.source = _source(slow.base_url, 1.0)
        started = time.monotonic()
        status = rec.reconcile(SCOPE)
        took = time.monotonic() - started
    assert status["reconcile_status"] == "source_error", status
    assert "not answered within 1s" in status["reason"]
    assert took < 2.0, took
    kept = rec.snapshots.get(SCOPE)
    assert kept is not None and kept.serves_until == 1030.0  # the window started


def test_an_oversized_head_is_refused_before_it_is_held(
    plane: tuple[ControlPlaneState, str],
) -> None:
    _state, _url = plane
    huge = Response(b"{" + b" " * (300 << 10) + b"}", media_type="application/json")
    with BackgroundServer(_hostile_plane(huge)) as big:
        rec = _reconciler(big.base_url)
        status = rec.reconcile(SCOPE)
    assert status["reconcile_status"] == "source_error"
    assert "exceeds 65536 bytes" in status["reason"], status["reason"]
