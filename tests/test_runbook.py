"""``make runbook``'s job runs its steps for real against the bundled runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook import runbook

pytestmark = pytest.mark.slow


def test_smoke_path_passes_against_the_bundled_runtime(tmp_path: Path) -> None:
    rows = runbook.smoke_local(tmp_path)
    names = [name for name, _, _ in rows]
    assert names == [
        "runtime.start",
        "smoke.health",
        "smoke.evaluate",
        "smoke.receipts",
        "receipts.verify",
        "smoke.restart",
    ]
    assert "DENY PDP_DENY" in rows[2][1]
    assert (tmp_path / "data" / "root.key").stat().st_mode & 0o777 == 0o600
