"""CEL under its limits (issue 23.4): the slowest evaluation each bound still admits. Prints figures;
asserts nothing.

    .venv/bin/python benchmarks/cel_limits.py

For each expression, the longest list of integers the request context may carry within
CEL_MAX_COST / CEL_MAX_INPUT_VALUES is found, then one evaluation is timed (the CEL binding holds
the GIL for that long, so this is how long a request can hold the runtime's other threads). The
last line times the same quadratic expression over 2,000 items, which the bounds refuse.
"""

from __future__ import annotations

import time
from typing import Any

from helm_runbook.runtime.policy import compiler
from helm_runbook.runtime.policy.compiler import CEL_MAX_COST, CelError, Rule

EXPRESSIONS = [
    "input.xs.all(x, input.xs.exists(y, y == x))",
    "input.xs.all(x, input.xs.exists(y, input.xs.exists(z, z == y + x)))",
    "input.xs.all(x, x >= 0)",
    "input.xs.all(x, " + " || ".join(f"x == {i}" for i in range(340)) + " || x >= 0)",
]


def admitted(rule: Rule, n: int) -> bool:
    try:
        values = compiler.cel_input_values({"input": {"xs": list(range(n))}})
    except CelError:
        return False
    return len(rule.expression) * values ** max(rule.macros, 1) <= CEL_MAX_COST


def rule_of(expression: str) -> Rule:
    return Rule(
        "a", "set", "sha256:x", expression=expression,
        program=compiler.compile_cel(expression), macros=compiler.cel_macros(expression),
    )  # fmt: skip


def timed(rule: Rule, cel_input: dict[str, Any]) -> float:
    started = time.perf_counter()
    rule.program.execute(cel_input)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    print(f"CEL_MAX_COST={CEL_MAX_COST} CEL_MAX_INPUT_VALUES={compiler.CEL_MAX_INPUT_VALUES}")
    for expression in EXPRESSIONS:
        rule = rule_of(expression)
        lo, hi = 1, compiler.CEL_MAX_INPUT_VALUES
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if admitted(rule, mid) else (lo, mid)
        ms = timed(rule, {"input": {"xs": list(range(lo))}})
        print(f"{len(expression):>5} chars, {rule.macros} macros, {lo:>6} items: {ms:8.1f} ms")
    rule = rule_of(EXPRESSIONS[0])
    ms = timed(rule, {"input": {"xs": list(range(2000))}})
    print(f"refused by the bound: {EXPRESSIONS[0]} over 2000 items takes {ms:.0f} ms")


if __name__ == "__main__":
    main()
