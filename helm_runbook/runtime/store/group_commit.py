"""Group commit: receipts of requests that are ready in the same event-loop turn share one
transaction.

Each request still gets its response only after the transaction holding its receipt commits
(durable before the response), but the fixed cost of a commit is paid once per batch instead of
once per request. With one request in flight this is exactly a single append; under concurrency
it raises throughput without adding a wait (the flush is scheduled with ``call_soon``, not a
timer).

A store whose commits cross the network (``blocking_commits``, PostgreSQL) is flushed on a worker
thread, one batch at a time: requests that arrive while a batch commits form the next batch, and
the event loop keeps serving (health probes included) while the database works.
"""

from __future__ import annotations

import asyncio

from helm_runbook.runtime.store.base import AppendedReceipt, AppendJob, ReceiptStore

_Batch = list[tuple[AppendJob, "asyncio.Future[AppendedReceipt]"]]


class GroupCommitter:
    def __init__(self, store: ReceiptStore, *, max_batch: int = 128) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[AppendJob, asyncio.Future[AppendedReceipt]]] = []
        self.batches = 0
        self.appended = 0
        self._offload = store.blocking_commits
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, job: AppendJob) -> AppendedReceipt:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendedReceipt] = loop.create_future()
        self._pending.append((job, future))
        if self._offload:
            if not self._flushing:
                self._flushing = True
                self._flusher = loop.create_task(self._flush_in_thread())
        elif len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    async def _flush_in_thread(self) -> None:
        try:
            while self._pending:
                batch, self._pending = (
                    self._pending[: self.max_batch],
                    self._pending[self.max_batch :],
                )
                try:
                    results = await asyncio.to_thread(
                        self.store.append_batch, [job for job, _ in batch]
                    )
                except Exception as exc:
                    self._settle_failed(batch, exc)
                    continue
                self._settle(batch, results)
        finally:
            self._flushing = False

    def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                results = self.store.append_batch([job for job, _ in batch])
            except Exception as exc:
                self._settle_failed(batch, exc)
                continue
            self._settle(batch, results)

    @staticmethod
    def _settle_failed(batch: _Batch, exc: Exception) -> None:
        """The whole transaction failed: nobody's receipt is durable."""
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _settle(self, batch: _Batch, results: list[AppendedReceipt | Exception]) -> None:
        self.batches += 1
        self.appended += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the client went away; its receipt is stored regardless
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
