"""The package's public surface: ``__all__`` is sorted and every name resolves."""

from __future__ import annotations

import helm_runbook


def test_all_is_sorted_and_complete() -> None:
    assert list(helm_runbook.__all__) == sorted(helm_runbook.__all__)
    for name in helm_runbook.__all__:
        assert hasattr(helm_runbook, name), name


def test_errors_carry_their_fix() -> None:
    err = helm_runbook.StepFailed(
        "smoke.health", expected="200 on :8081/health", seen="404", fix="port-forward 8081"
    )
    assert "smoke.health" in str(err)
    assert str(err).endswith("fix: port-forward 8081")
