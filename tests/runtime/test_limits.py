"""Token buckets and the concurrency cap, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook.runtime.limits import (
    ACTOR_RATE_LIMIT_EXCEEDED,
    GLOBAL_RATE_LIMIT_EXCEEDED,
    ConcurrencyGate,
    LimitSettings,
    RateLimiter,
)
from helm_runbook.runtime.settings import Settings, SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_global_burst_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(LimitSettings(global_rps=2, global_burst=3), clock=clock)
    assert [limiter.check("a") for _ in range(4)] == [None, None, None, GLOBAL_RATE_LIMIT_EXCEEDED]
    clock.now += 0.5  # one token back at 2 rps
    assert limiter.check("a") is None
    assert limiter.check("a") == GLOBAL_RATE_LIMIT_EXCEEDED


def test_actor_buckets_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(LimitSettings(actor_rps=1, actor_burst=2), clock=clock)
    assert [limiter.check("a") for _ in range(3)] == [None, None, ACTOR_RATE_LIMIT_EXCEEDED]
    assert limiter.check("b") is None
    clock.now += 1.0
    assert limiter.check("a") is None


def test_zero_disables_and_actor_map_is_bounded() -> None:
    limiter = RateLimiter(LimitSettings(actor_rps=1, actor_burst=1), clock=Clock(), max_actors=3)
    for n in range(10):
        assert limiter.check(f"actor{n}") is None
    assert len(limiter._actors) == 3
    assert all(RateLimiter(LimitSettings()).check("x") is None for _ in range(1000))


def test_concurrency_gate() -> None:
    gate = ConcurrencyGate(2)
    assert gate.enter() and gate.enter()
    assert not gate.enter()
    gate.exit()
    assert gate.enter()
    assert all(ConcurrencyGate(0).enter() for _ in range(100))


def test_read_deadlines_come_from_the_environment_and_bad_values_name_the_variable(
    tmp_path: Path,
) -> None:
    def limits(env: dict[str, str]) -> LimitSettings:
        return Settings.from_env(
            policy_path=tmp_path / "p.toml",
            addr="127.0.0.1",
            port=0,
            data_dir=tmp_path,
            environ=env,
        ).limits

    assert (limits({}).header_timeout_s, limits({}).body_timeout_s) == (10.0, 30.0)
    custom = limits({"HELM_HTTP_HEADER_TIMEOUT": "500ms", "HELM_HTTP_BODY_TIMEOUT": "1m"})
    assert (custom.header_timeout_s, custom.body_timeout_s) == (0.5, 60.0)
    for name, raw in (("HELM_HTTP_HEADER_TIMEOUT", "0"), ("HELM_HTTP_BODY_TIMEOUT", "soon")):
        with pytest.raises(SettingsError, match=name):
            limits({name: raw})
