"""Request limits (docs/upstream-contract.md#limits): global and per-actor token buckets, and a concurrency cap.

A bucket refills at ``rps`` tokens a second up to ``burst``; a request takes one token. Zero
disables a limit. Time comes from an injectable clock so tests never sleep.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

GLOBAL_RATE_LIMIT_EXCEEDED = "GLOBAL_RATE_LIMIT_EXCEEDED"
ACTOR_RATE_LIMIT_EXCEEDED = "ACTOR_RESOURCE_RATE_LIMIT_EXCEEDED"
CONCURRENCY_LIMIT_EXCEEDED = "CONCURRENCY_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class LimitSettings:
    global_rps: float = 0.0
    global_burst: int = 0
    actor_rps: float = 0.0
    actor_burst: int = 0
    concurrency_max: int = 0


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, max(burst, 1)
        self.tokens, self.updated = float(self.burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Global bucket first, then the actor's; actors are kept in a bounded LRU map."""

    def __init__(
        self,
        settings: LimitSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_actors: int = 10_000,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.max_actors = max_actors
        now = clock()
        self._global = (
            TokenBucket(settings.global_rps, settings.global_burst, now)
            if settings.global_rps > 0
            else None
        )
        self._actors: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, actor: str) -> str | None:
        """The limiter reason code when this request must be refused, else None."""
        now = self.clock()
        if self._global is not None and not self._global.take(now):
            return GLOBAL_RATE_LIMIT_EXCEEDED
        if self.settings.actor_rps > 0:
            bucket = self._actors.get(actor)
            if bucket is None:
                bucket = self._actors[actor] = TokenBucket(
                    self.settings.actor_rps, self.settings.actor_burst, now
                )
                if len(self._actors) > self.max_actors:
                    self._actors.popitem(last=False)
            else:
                self._actors.move_to_end(actor)
            if not bucket.take(now):
                return ACTOR_RATE_LIMIT_EXCEEDED
        return None


class ConcurrencyGate:
    """At most ``maximum`` requests in flight (0 = unlimited)."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.in_flight = 0

    def enter(self) -> bool:
        if self.maximum and self.in_flight >= self.maximum:
            return False
        self.in_flight += 1
        return True

    def exit(self) -> None:
        self.in_flight -= 1
