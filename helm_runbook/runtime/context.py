"""What every handler works with: the runtime's parts, assembled once at start-up.

A leaf module: the app, the route table and the handlers all import it, and it imports none of
them, so the runtime's modules form no import circle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from helm_runbook.formats.keys import Signer
from helm_runbook.runtime.evidence import VerifyWorkers
from helm_runbook.runtime.kernel import Kernel
from helm_runbook.runtime.limits import (
    MAX_HEAVY_PARSES,
    MAX_QUEUED_PARSES,
    BodyBudget,
    BoundedWorkers,
    ConcurrencyGate,
    RateLimiter,
)
from helm_runbook.runtime.policy.compiler import SANDBOX
from helm_runbook.runtime.policy.reconciler import Reconciler
from helm_runbook.runtime.policy.snapshot import PolicyScope
from helm_runbook.runtime.settings import Settings
from helm_runbook.runtime.store.base import ReceiptStore
from helm_runbook.runtime.upstream import Upstream, open_upstream

if TYPE_CHECKING:
    from helm_runbook.runtime.metrics import Metrics


@dataclass
class Runtime:
    """Everything the handlers need, assembled once at start-up."""

    settings: Settings
    scope: PolicyScope
    kernel: Kernel
    store: ReceiptStore
    signer: Signer
    evidence_signer: Signer
    reconciler: Reconciler
    metrics: Metrics | None = None
    limiter: RateLimiter | None = None
    gate: ConcurrencyGate | None = None
    verify_workers: VerifyWorkers = field(default_factory=VerifyWorkers)
    body_budget: BodyBudget = field(default_factory=lambda: BodyBudget(0))
    anonymous_receipts: RateLimiter | None = None  # the proxy's receipts per address and in all
    parse_workers: BoundedWorkers = field(
        default_factory=lambda: BoundedWorkers(MAX_HEAVY_PARSES, MAX_QUEUED_PARSES, "json-parse")
    )
    _upstream: Upstream | None = None

    async def upstream_client(self) -> Upstream:
        """One pooled client for the proxy's upstream calls, created on first use (its TLS
        context, or httpx when a forward proxy applies, loads then in a worker thread: not
        before the pod answers its probes, never on the loop that answers them)."""
        if self._upstream is None:
            client = await open_upstream(
                self.settings.upstream_url, self.settings.upstream_timeout_s
            )
            if self._upstream is None:  # another first request may have made it meanwhile
                self._upstream = client
            else:
                await client.aclose()
        return self._upstream

    async def aclose(self) -> None:
        self.verify_workers.close()
        self.parse_workers.close()
        await asyncio.to_thread(SANDBOX.close)
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None


__all__ = ["Runtime"]
