"""Chart lint and render cost through Helm's Go SDK (issue 3). Prints figures; asserts nothing.

.venv/bin/python benchmarks/chart_render.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import lint, render
from helm_runbook.chart.smoke import PRODUCTION


def median_ms(fn: object, n: int = 30) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    cold = subprocess.run(
        [sys.executable, "-c", "import time; t=time.perf_counter(); from helm_runbook.chart.sdk import lint, render; "
         "from helm_runbook.chart import CHART_DIR; lint(CHART_DIR); render(CHART_DIR); print(time.perf_counter()-t)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    print(
        f"fresh process: import + load shared library + lint + render: {float(cold.stdout) * 1000:.0f} ms"
    )
    print(f"warm lint (strict):            median {median_ms(lambda: lint(CHART_DIR)):.1f} ms")
    print(f"warm render, defaults:         median {median_ms(lambda: render(CHART_DIR)):.1f} ms")
    print(
        f"warm render, production:       median {median_ms(lambda: render(CHART_DIR, PRODUCTION)):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
