"""The wake-hint step when the poll wins the race: live either way, and recorded as such."""

from __future__ import annotations

from typing import Any

import pytest

from helm_runbook.errors import StepFailed
from helm_runbook.steps import policy


class _Answer:
    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.api_url = "http://api"

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def reconcile(self) -> dict[str, Any]:
        return self.status


class _Target:
    """What the wake step reads of a target besides the client: the kubelet's sync time."""

    config_sync_s = 0.0

    def wait_config_synced(self, name: str | None = None) -> float:
        return 0.0


class _StandIn:
    url = "http://127.0.0.1:1"
    stand_in = True

    def __init__(self, epoch: int) -> None:
        self.published_epoch = epoch


@pytest.fixture(autouse=True)
def _no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "WAKE_GRACE_S", 0.0)


def _answer(monkeypatch: pytest.MonkeyPatch, reconcile_status: str, epoch: int) -> None:
    status = {"reconcile_status": reconcile_status, "snapshot_status": "active", "reason": "",
              "policy_hash": "sha256:x", "policy_epoch": epoch, "updated": reconcile_status == "ok"}  # fmt: skip
    monkeypatch.setattr(
        policy.RuntimeClient, "for_target", classmethod(lambda cls, *a, **k: _Answer(status))
    )


def test_the_wake_hint_loading_the_version_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, "ok", 7)
    report = policy.wake_reconcile(_Target(), expect="ok", stand_in=_StandIn(7))  # type: ignore[arg-type]
    assert report.values["loaded_by"] == "wake hint"


def test_the_poll_loading_the_published_version_first_passes_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _answer(monkeypatch, "no_change", 7)
    report = policy.wake_reconcile(_Target(), expect="ok", stand_in=_StandIn(7))  # type: ignore[arg-type]
    assert report.values["loaded_by"] == "poll"
    assert report.values["reconcile_status"] == "no_change"  # what the runtime said, unchanged


def test_no_change_on_an_older_version_is_still_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, "no_change", 6)
    with pytest.raises(StepFailed) as failed:
        policy.wake_reconcile(_Target(), expect="ok", stand_in=_StandIn(7))  # type: ignore[arg-type]
    assert "no_change/active" in failed.value.seen
    _answer(monkeypatch, "no_change", 7)
    with pytest.raises(StepFailed):  # without the stand-in nothing says which version is due
        policy.wake_reconcile(_Target(), expect="ok")  # type: ignore[arg-type]


class _Decides(_Answer):
    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.status


@pytest.mark.parametrize(
    ("reason", "names_the_window"),
    [("last-known-good snapshot expired after 3s: control plane answered 503", True),
     ("PDP_DENY (ref=helm:helm-chart)", False)],
)  # fmt: skip
def test_a_check_after_the_lkg_window_says_the_machine_was_too_slow_for_it(
    monkeypatch: pytest.MonkeyPatch, reason: str, names_the_window: bool
) -> None:
    """The "last-known-good keeps serving" check races the window on a slow machine: losing it
    is named as such, with the parameter to lengthen, not as a refused update."""
    decision = {"verdict": "DENY", "reason_code": "POLICY_NOT_READY", "reason": reason}
    monkeypatch.setattr(
        policy.RuntimeClient, "for_target", classmethod(lambda cls, *a, **k: _Decides(decision))
    )
    with pytest.raises(StepFailed) as failed:
        policy.governed_request(object(), "file_read", expect="ALLOW")  # type: ignore[arg-type]
    assert ("last_known_good_max_age" in failed.value.fix) is names_the_window
    assert reason in failed.value.seen


class _Sequence(_Answer):
    """The runtime's answers in turn: the mount syncs after the first ``stale`` hints."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        super().__init__(answers[0])
        self.answers = answers
        self.calls = 0

    def reconcile(self) -> dict[str, Any]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def _status(reconcile_status: str, desired: str, installed: str) -> dict[str, Any]:
    return {"reconcile_status": reconcile_status, "snapshot_status": "active", "reason": "",
            "policy_hash": installed, "installed_policy_hash": installed, "desired_policy_hash": desired,
            "policy_epoch": 1, "updated": reconcile_status == "ok"}  # fmt: skip


class _Synced(_Target):
    config_sync_s = 5.0


def _published(policy_hash: str) -> Any:
    return type(
        "Published", (), {"values": {"policy_hash": policy_hash, "config_map": "helm-policy"}}
    )()


def _client(monkeypatch: pytest.MonkeyPatch, answers: list[dict[str, Any]]) -> _Sequence:
    client = _Sequence(answers)
    monkeypatch.setattr(
        policy.RuntimeClient, "for_target", classmethod(lambda cls, *a, **k: client)
    )
    return client


def test_the_hint_is_repeated_until_the_mount_shows_the_published_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ConfigMap reaches the pod after the kubelet's sync: a hint before it answers about the
    old files (no_change) and is sent again, never taken for the answer."""
    client = _client(monkeypatch, [_status("no_change", "sha256:old", "sha256:old")] * 2
                     + [_status("ok", "sha256:new", "sha256:new")])  # fmt: skip
    report = policy.wake_reconcile(_Synced(), expect="ok", published=_published("sha256:new"))  # type: ignore[arg-type]
    assert client.calls == 3 and report.values["wakes"] == 3
    assert report.values["loaded_by"] == "wake hint"


def test_the_poll_loading_the_published_files_first_passes_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _client(monkeypatch, [_status("no_change", "sha256:new", "sha256:new")])
    report = policy.wake_reconcile(_Synced(), expect="ok", published=_published("sha256:new"))  # type: ignore[arg-type]
    assert report.values["loaded_by"] == "poll" and report.values["wakes"] == 1


def test_a_mount_that_never_shows_the_published_policy_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client(monkeypatch, [_status("no_change", "sha256:old", "sha256:old")])
    with pytest.raises(StepFailed) as failed:
        policy.wake_reconcile(_Target(), expect="ok", published=_published("sha256:new"))  # type: ignore[arg-type]
    assert "published policy sha256:new" in failed.value.expected
    assert "helm-policy" in failed.value.fix and client.calls >= 1
