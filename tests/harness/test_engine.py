"""The runner's papermill engine: fewer writes of the executed copy, nothing of a failure lost."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill import engines
from papermill.exceptions import PapermillExecutionError

from helm_runbook.harness.engine import SAVE_EVERY_S, register
from helm_runbook.harness.lab import KERNEL_NAME, ensure_kernel

CELLS = 12


def _notebook(path: Path, last: str) -> Path:
    cells = [nbformat.v4.new_code_cell(f"x = {n}") for n in range(CELLS)]
    cells.append(nbformat.v4.new_code_cell(last))
    doc = nbformat.v4.new_notebook(cells=cells)
    doc.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": KERNEL_NAME,
        "language": "python",
    }
    nbformat.write(doc, path)
    return path


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = engines.write_ipynb

    def counting(nb: object, path: str) -> None:
        seen.append(path)
        real(nb, path)

    monkeypatch.setattr(engines, "write_ipynb", counting)
    return seen


def test_a_run_writes_its_copy_a_few_times_not_around_every_cell(
    tmp_path: Path, writes: list[str]
) -> None:
    ensure_kernel()
    source = _notebook(tmp_path / "in.ipynb", "print('done')")
    started = time.monotonic()
    papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name=KERNEL_NAME,
                               progress_bar=False, engine_name=register())  # fmt: skip
    took = time.monotonic() - started
    # papermill's own engine writes before and after each of the 13 cells (28 writes); this one
    # at the start, at the end, and at most once every SAVE_EVERY_S between (the kernel's start
    # counts: a loaded machine takes longer, and may write more, never around every cell).
    assert 2 <= len(writes) <= 2 + took / SAVE_EVERY_S, (writes, took)
    assert len(writes) < 2 * CELLS
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "done\n"


def test_the_failing_cell_is_written_with_its_error(tmp_path: Path, writes: list[str]) -> None:
    ensure_kernel()
    source = _notebook(tmp_path / "in.ipynb", "raise RuntimeError('step broke')")
    with pytest.raises(PapermillExecutionError, match="step broke"):
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name=KERNEL_NAME,
                                   progress_bar=False, engine_name=register())  # fmt: skip
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    failed = out.cells[-1]
    assert failed.metadata.papermill["status"] == "failed"
    assert failed.outputs[-1]["evalue"] == "step broke"
