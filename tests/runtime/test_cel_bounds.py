"""CEL bounded for real (issue 30): comments cannot hide comprehension macros from the cost
bound, and an expression that may run long is evaluated in the sandbox process, stopped at its
wall-clock limit and denied, while the event loop keeps running."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.testclient import TestClient

from helm_runbook.runtime.policy import compiler
from tests.conftest import TENANT_HEADERS, RuntimeFactory

HIDDEN = (
    "input.effect.params.args.l.// a comment\n all(a, input.effect.params.args.l.//\n"
    " all(b, input.effect.params.args.l.// c\n all(c, a + b + c >= 0)))"
)
# 480 chained concatenations of a 100 KB string copy about 11 GB: minutes in-process.
CONCAT = "size(" + "+".join(["input.effect.params.args.s"] * 140) + ") > 0"


def test_comments_do_not_hide_macros_from_the_count() -> None:
    assert compiler.cel_macros(HIDDEN) == 3
    assert compiler.cel_macros('"//".size() > 0 && [1].all(x, x > 0)') == 1
    assert not compiler.runs_inline(HIDDEN)
    assert compiler.runs_inline('input.effect.params.args.path == "/etc/hostname" // ok')


def test_a_comment_hidden_cubic_rule_is_refused_by_the_cost_bound(
    make_runtime: RuntimeFactory, client_for: type[TestClient]
) -> None:
    runtime = make_runtime([{"action": "file_read", "expression": HIDDEN}])
    client = client_for(runtime)  # type: ignore[call-arg]
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s",
            "args": {"l": list(range(200))}}  # fmt: skip
    started = time.monotonic()
    answer = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).json()
    assert time.monotonic() - started < 10  # refused by its cost, not run (15.8 s before)
    assert (answer["verdict"], answer["reason_code"]) == ("DENY", "PRG_EVALUATION_ERROR")
    assert "CEL_MAX_COST" in answer["reason"]


def test_a_slow_expression_is_stopped_at_the_wall_clock_limit_and_denied(
    make_runtime: RuntimeFactory, client_for: type[TestClient]
) -> None:
    assert len(CONCAT) < compiler.CEL_MAX_SOURCE_CHARS
    runtime = make_runtime([{"action": "file_read", "expression": CONCAT}])
    client = client_for(runtime)  # type: ignore[call-arg]
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s",
            "args": {"s": "x" * 200_000}}  # fmt: skip
    started = time.monotonic()
    answer = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).json()
    took = time.monotonic() - started
    assert (answer["verdict"], answer["reason_code"]) == ("DENY", "PRG_EVALUATION_ERROR"), answer
    assert "did not finish within 1s" in answer["reason"]
    assert took < compiler.CEL_TIMEOUT_S + 4.0, took
    small = {**body, "args": {"s": "x"}}  # the same rule on a small input: evaluated, allowed
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=small).json()["allow"]


def test_the_event_loop_keeps_running_while_the_sandbox_evaluates(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime([{"action": "file_read", "expression": CONCAT}])

    async def scenario() -> float:
        gaps: list[float] = []
        done = asyncio.Event()

        async def tick() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        result = await runtime.kernel.evaluate_async(
            tenant_id="default", principal="p", session_id="s", action="file_read",
            resource="E1", args={"s": "x" * 200_000}, context={"args": {"s": "x" * 200_000}},
        )  # fmt: skip
        done.set()
        await ticker
        assert result.decision.reason_code == "PRG_EVALUATION_ERROR"
        return max(gaps)

    assert asyncio.run(scenario()) < 2.0  # the loop kept ticking: the work ran off it


@pytest.fixture(autouse=True)
def _sandbox_closed() -> None:
    """Each test starts the sandbox worker as a pod's first sandboxed rule would."""
    compiler.SANDBOX.close()
