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


class _StandIn:
    url = "http://127.0.0.1:1"
    stand_in = True

    def __init__(self, epoch: int) -> None:
        self.published_epoch = epoch


def _answer(monkeypatch: pytest.MonkeyPatch, reconcile_status: str, epoch: int) -> None:
    status = {"reconcile_status": reconcile_status, "snapshot_status": "active", "reason": "",
              "policy_hash": "sha256:x", "policy_epoch": epoch, "updated": reconcile_status == "ok"}  # fmt: skip
    monkeypatch.setattr(
        policy.RuntimeClient, "for_target", classmethod(lambda cls, *a, **k: _Answer(status))
    )


def test_the_wake_hint_loading_the_version_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, "ok", 7)
    report = policy.wake_reconcile(object(), expect="ok", stand_in=_StandIn(7))  # type: ignore[arg-type]
    assert report.values["loaded_by"] == "wake hint"


def test_the_poll_loading_the_published_version_first_passes_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _answer(monkeypatch, "no_change", 7)
    report = policy.wake_reconcile(object(), expect="ok", stand_in=_StandIn(7))  # type: ignore[arg-type]
    assert report.values["loaded_by"] == "poll"
    assert report.values["reconcile_status"] == "no_change"  # what the runtime said, unchanged


def test_no_change_on_an_older_version_is_still_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, "no_change", 6)
    with pytest.raises(StepFailed) as failed:
        policy.wake_reconcile(object(), expect="ok", stand_in=_StandIn(7))  # type: ignore[arg-type]
    assert "no_change/active" in failed.value.seen
    _answer(monkeypatch, "no_change", 7)
    with pytest.raises(StepFailed):  # without the stand-in nothing says which version is due
        policy.wake_reconcile(object(), expect="ok")  # type: ignore[arg-type]


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
