"""Request limits (docs/upstream-contract.md#limits): token buckets, the concurrency cap, and what a request may carry.

A bucket refills at ``rps`` tokens a second up to ``burst``; a request takes one token. Zero
disables a limit. Time comes from an injectable clock so tests never sleep.

JSON bodies (every route that reads JSON, with ``formats/json_reader.py``; a broken limit answers
400 problem+json naming it):

| limit | value |
| --- | --- |
| nesting depth (arrays and objects) | ``MAX_JSON_DEPTH`` = 64 |
| items in one array | ``MAX_JSON_ARRAY_ITEMS`` = 10,000 |
| members in one object | ``MAX_JSON_OBJECT_MEMBERS`` = 10,000 |
| characters in one string or key | ``MAX_JSON_STRING_CHARS`` = 1,048,576 |
| integers | ±(2^53-1) (I-JSON); floats must be finite, at most 64 characters |
| duplicate keys, lone surrogates, NaN/Infinity | refused |

Reading a request (``edge.py``; nothing past a cap is held in memory):

| limit | value | env |
| --- | --- | --- |
| request line + headers | ``MAX_HEADER_BYTES`` = 64 KiB, else 431 and close | |
| time to send the request line and headers | 10 s, else 408 and close | ``HELM_HTTP_HEADER_TIMEOUT`` |
| time to send the whole body | 30 s, else 408 problem | ``HELM_HTTP_BODY_TIMEOUT`` |
| body bytes, streamed (chunked too) | per route in ``routes.py``, else 413 problem | |
| multipart | ``MAX_MULTIPART_FILES`` = 1, ``MAX_MULTIPART_FIELDS`` = 4 of ``MAX_MULTIPART_FIELD_BYTES`` = 64 KiB; the file within the route's cap | |

The concurrency slot is taken only once the body is in, so slow senders never hold one.

What all requests together may hold or write (``BodyBudget``, the proxy's ``RateLimiter``; 0
disables one):

| limit | value | env |
| --- | --- | --- |
| request-body bytes buffered by the whole process: a ``Content-Length`` that does not fit is refused before reading, each chunk is reserved before it is kept, all released when the answer is made | 48 MiB, else 503 ``BODY_BUDGET_EXHAUSTED`` with ``Retry-After: 1`` and close | ``HELM_BODY_BUDGET_BYTES`` |
| receipts the anonymous proxy writes per minute for one client address | 600 (a burst of 600, refilled at 10/s), else 429 ``ANONYMOUS_RECEIPT_BUDGET_EXCEEDED``, nothing written | ``HELM_ANONYMOUS_RECEIPTS_PER_MINUTE`` |
| receipts the anonymous proxy writes per minute for all addresses together | 3,000, else 429; with receipts of at most ``MAX_STORED_RECEIPT_BYTES``, the store grows by at most 48 MiB a minute from anonymous callers (about 6 MiB with the usual 2 KiB receipts) | ``HELM_ANONYMOUS_RECEIPTS_PER_MINUTE_TOTAL`` |
| JSON bodies over 256 KiB parsed at once | ``MAX_HEAVY_PARSES`` = 1 worker thread, ``MAX_QUEUED_PARSES`` = 8 waiting, else 503 ``JSON_PARSER_BUSY`` | |

The health port is served by a thread and event loop of its own: its probes never wait for body
parsing, CEL or receipt commits on the API port's loop.

Answers and other state:

| limit | value |
| --- | --- |
| query integers (``limit``, ``offset``, ``since=lamport:``) | ASCII digits, 0..2^63-1, else 400 |
| ``from``/``to`` | RFC3339 within int64 nanoseconds (1677-09-21..2262-04-11), else 400 |
| receipt envelopes in one listing page | ``MAX_LISTING_BYTES`` = 8 MiB (``has_more`` says the rest) |
| ProofGraph receipts of one session | ``MAX_LISTING_BYTES``, else 413 naming the paged route |
| a non-streamed upstream answer on the proxy | ``MAX_UPSTREAM_RESPONSE_BYTES`` = 32 MiB decoded, else 502 |
| distinct ``tool`` / ``reason`` metric labels | ``MAX_METRIC_LABELS`` = 64 each, the rest fold into ``_other`` |

Names a caller chooses (every route, the proxy included; over the cap or outside the charset is
a 400 naming the field):

| limit | value |
| --- | --- |
| ``session_id``, principal, tenant, workspace, ``model``, ``tool``/``action``, ``resource``/``effect_level``, listing filters | ``MAX_ID_BYTES`` = 256 bytes of printable ASCII (``!`` to ``~``, no space); a session id also without ``/`` and ``\\`` |
| one signed receipt, as stored and exported | ``MAX_STORED_RECEIPT_BYTES`` = 16 KiB, under the evidence pack's 64 KiB member cap |
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from helm_runbook.formats.json_reader import (  # noqa: F401  (listed above; the reader's own)
    MAX_JSON_ARRAY_ITEMS,
    MAX_JSON_DEPTH,
    MAX_JSON_OBJECT_MEMBERS,
    MAX_JSON_STRING_CHARS,
)

T = TypeVar("T")

GLOBAL_RATE_LIMIT_EXCEEDED = "GLOBAL_RATE_LIMIT_EXCEEDED"
ACTOR_RATE_LIMIT_EXCEEDED = "ACTOR_RESOURCE_RATE_LIMIT_EXCEEDED"
CONCURRENCY_LIMIT_EXCEEDED = "CONCURRENCY_LIMIT_EXCEEDED"
BODY_BUDGET_EXHAUSTED = "BODY_BUDGET_EXHAUSTED"
ANONYMOUS_RECEIPT_BUDGET_EXCEEDED = "ANONYMOUS_RECEIPT_BUDGET_EXCEEDED"
JSON_PARSER_BUSY = "JSON_PARSER_BUSY"

MAX_HEADER_BYTES = 64 << 10
MAX_MULTIPART_FILES = 1
MAX_MULTIPART_FIELDS = 4
MAX_MULTIPART_FIELD_BYTES = 64 << 10
MAX_LISTING_BYTES = 8 << 20
MAX_METRIC_LABELS = 64
MAX_UPSTREAM_RESPONSE_BYTES = 32 << 20
MAX_ID_BYTES = 256
MAX_HEAVY_PARSES = 1
MAX_QUEUED_PARSES = 8
MAX_STORED_RECEIPT_BYTES = 16 << 10  # every stored receipt fits an evidence pack (64 KiB a member)


@dataclass(frozen=True)
class LimitSettings:
    global_rps: float = 0.0
    global_burst: int = 0
    actor_rps: float = 0.0
    actor_burst: int = 0
    concurrency_max: int = 0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_budget_bytes: int = 48 << 20
    anonymous_receipts_per_minute: int = 600
    anonymous_receipts_per_minute_total: int = 3000

    def anonymous_receipts(self) -> LimitSettings:
        """The proxy's receipt budget as bucket settings: per address and for all together."""
        return LimitSettings(
            global_rps=self.anonymous_receipts_per_minute_total / 60,
            global_burst=self.anonymous_receipts_per_minute_total,
            actor_rps=self.anonymous_receipts_per_minute / 60,
            actor_burst=self.anonymous_receipts_per_minute,
        )


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
    """Global bucket first, then the actor's; actors are kept in a bounded LRU map.

    The app keys actors on who *authenticated* (``principal:<tenant>/<principal>``); requests on
    public routes and requests that fail auth spend their client address's bucket
    (``addr:<ip>``), so a claimed principal header never costs the real principal a token.
    """

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


class BodyBudget:
    """Request-body bytes the whole process may hold at once (0 = unlimited). Used from the event
    loop only: reserving is a check and an add, no lock."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self.peak = 0

    def fits(self, size: int) -> bool:
        return not self.total or self.held + size <= self.total

    def reserve(self, size: int) -> bool:
        if not self.fits(size):
            return False
        self.held += size
        self.peak = max(self.peak, self.held)
        return True

    def release(self, size: int) -> None:
        self.held -= size


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


class WorkersBusy(Exception):
    """Every worker is busy and the queue is full: answer 503 and let the client retry."""


class BoundedWorkers:
    """Heavy work in worker threads off the event loop, at most ``workers`` at once and ``queue``
    waiting; beyond that a call is refused at once (never an unbounded backlog of bodies)."""

    def __init__(self, workers: int, queue: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.capacity = workers + queue
        self._admitted = 0
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._admitted >= self.capacity:
                raise WorkersBusy(f"{self.capacity} already running or queued")
            self._admitted += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
        finally:
            with self._lock:
                self._admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
