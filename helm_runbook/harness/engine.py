"""The papermill engine the runner executes runbooks with: papermill's nbclient engine, saving the
executed copy at a pace instead of around every cell.

papermill writes the whole notebook (deep copy, schema validation, indented JSON) before and
after every cell, markdown included: 10-25 ms per write once a runbook has its outputs, about a
second of runbook 07's 53 cells, spent on copies nobody reads until the run ends. This engine
writes at most every ``SAVE_EVERY_S`` during the cells, and always at the start, when a cell
raises and at the end (papermill's ``notebook_complete`` runs in a ``finally``), so a failed or
interrupted run still leaves its copy with the failing cell's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE_NAME = "helm-runbook"
SAVE_EVERY_S = 2.0  # a watcher of build/runbooks/.running sees progress at least this often


class PacedSaves(NotebookExecutionManager):  # type: ignore[misc]  # papermill is untyped
    """papermill's execution manager, its per-cell saves paced to one per ``SAVE_EVERY_S``."""

    _paced = False

    @contextlib.contextmanager
    def _pacing(self) -> Iterator[None]:
        self._paced = True
        try:
            yield
        finally:
            self._paced = False

    def save(self, **kwargs: Any) -> None:
        due = (self.now() - self.last_save_time).total_seconds() >= SAVE_EVERY_S
        if not self._paced or due:
            super().save(**kwargs)

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        with self._pacing():
            super().cell_start(cell, cell_index, **kwargs)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        with self._pacing():
            super().cell_complete(cell, cell_index, **kwargs)

    def cell_exception(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        super().cell_exception(cell, cell_index, **kwargs)
        self.save()  # the failing cell, whatever the pace: nothing is lost if the run dies now


class PacedEngine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine with ``PacedSaves`` (``Engine.execute_notebook`` otherwise)."""

    @classmethod
    def execute_notebook(
        cls, nb: Any, kernel_name: str, output_path: str | None = None, progress_bar: bool = True,
        log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any,
    ) -> Any:  # fmt: skip
        nb_man = PacedSaves(nb, output_path=output_path, progress_bar=progress_bar,
                            log_output=log_output, autosave_cell_every=autosave_cell_every)  # fmt: skip
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


def register() -> str:
    """Make the engine known to papermill (idempotent); returns its name for ``engine_name=``."""
    papermill_engines.register(ENGINE_NAME, PacedEngine)
    return ENGINE_NAME
