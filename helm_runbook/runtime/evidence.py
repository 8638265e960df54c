"""Evidence-pack verification off the event loop: a slow or hostile pack never delays the loop
that answers the health probes. The pack format and its verifier are helm_runbook/formats/evidence.py."""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from helm_runbook.formats.evidence import PackVerification, verify_pack

MAX_CONCURRENT_VERIFICATIONS = 2  # worker threads: the machine's other work keeps its cores
MAX_QUEUED_VERIFICATIONS = 4  # beyond workers + queue, a verify request is answered 503 at once


class VerifierBusy(Exception):
    """Every verification worker is busy and the queue is full: retry later."""


class VerifyWorkers:
    """Pack verification in worker threads so a slow pack never delays the loop that answers the
    health probes; at most ``workers`` run and ``queue`` wait, the rest are refused at once."""

    def __init__(
        self, workers: int = MAX_CONCURRENT_VERIFICATIONS, queue: int = MAX_QUEUED_VERIFICATIONS
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self._capacity = workers + queue
        self._admitted = 0
        self._lock = threading.Lock()

    async def verify(
        self,
        pack: bytes,
        *,
        receipt_public_key: str,
        evidence_public_key: str,
        replay: bool = False,
    ) -> PackVerification:
        with self._lock:
            if self._admitted >= self._capacity:
                raise VerifierBusy(f"{self._capacity} verifications already running or queued")
            self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool,
                functools.partial(
                    verify_pack,
                    pack,
                    receipt_public_key=receipt_public_key,
                    evidence_public_key=evidence_public_key,
                    replay=replay,
                ),
            )
        finally:
            with self._lock:
                self._admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
