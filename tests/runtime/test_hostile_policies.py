"""Hostile policies and requests: CEL is bounded before it runs, every failure of the CEL library
(BaseExceptions included) fails closed, and no reconcile failure ends the policy poll loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cel
import pytest
from starlette.testclient import TestClient

from helm_runbook.formats.policy_bundle import PolicyFileError
from helm_runbook.runtime.guardian import DecisionRequest, decide
from helm_runbook.runtime.policy import compiler
from helm_runbook.runtime.policy.compiler import Rule
from helm_runbook.runtime.policy.reconciler import Reconciler, ReconcileSettings
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import MountedFileSource
from helm_runbook.runtime.server import StartupError, _poll
from tests.conftest import TENANT_HEADERS, RuntimeFactory, write_policy

SCOPE = PolicyScope()
QUADRATIC = "input.effect.params.args.xs.all(x, input.effect.params.args.xs.exists(y, y == x))"


class PanicException(BaseException):
    """What pyo3 raises when the Rust side panics: a BaseException, not an Exception."""


def _probe(snapshots: SnapshotStore, action: str = "file_read", **args: Any) -> tuple[str, str]:
    request = DecisionRequest("p", action, "E1", {"args": args}, SCOPE)
    decision = decide(snapshots.get(SCOPE), request, time.time_ns())
    return decision.verdict, decision.reason


# -- compile and evaluation limits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "limit"),
    [
        ("true && " * 600 + "true", "CEL_MAX_SOURCE_CHARS"),
        ("(" * 40 + "true" + ")" * 40, "CEL_MAX_NESTING"),
    ],
)
def test_oversized_expressions_do_not_compile(expression: str, limit: str) -> None:
    pack = {"pack_id": "p", "version": 1, "actions": [{"action": "a", "expression": expression}]}
    with pytest.raises(PolicyFileError, match=limit):
        compiler.compile_pack("x", pack, source="pack.json")


def test_brackets_and_macros_inside_strings_do_not_count() -> None:
    quoted = "'" + "(" * 40 + ".all(" + "'"
    assert compiler.cel_macros(f"input.action == {quoted}") == 0
    assert compiler.cel_macros(f'r"\\" == {quoted}') == 0
    assert compiler.cel_macros(QUADRATIC) == 2


@pytest.mark.parametrize(
    ("args", "limit"),
    [
        ({"xs": list(range(2000))}, "CEL_MAX_COST"),
        ({"xs": list(range(compiler.CEL_MAX_INPUT_VALUES))}, "CEL_MAX_INPUT_VALUES"),
        ({"s": "x" * (compiler.CEL_MAX_INPUT_STRING_BYTES + 1)}, "CEL_MAX_INPUT_STRING_BYTES"),
        ({"deep": json.loads("[" * 40 + "]" * 40)}, "CEL_MAX_INPUT_DEPTH"),
    ],
)
def test_requests_beyond_the_cel_limits_are_denied_before_evaluation(
    tmp_path: Path, args: dict[str, Any], limit: str
) -> None:
    snapshots = SnapshotStore()
    toml = write_policy(tmp_path, [{"action": "file_read", "expression": QUADRATIC}])
    Reconciler(MountedFileSource(toml), snapshots, ReconcileSettings()).reconcile(SCOPE)
    assert _probe(snapshots, xs=[1, 2, 3])[0] == "ALLOW"
    verdict, reason = _probe(snapshots, **args)
    assert verdict == "DENY" and limit in reason, reason


def test_the_54kb_request_is_denied_over_http(
    make_runtime: RuntimeFactory, client_for: Any
) -> None:
    client: TestClient = client_for(
        make_runtime([{"action": "file_read", "expression": QUADRATIC}])
    )
    body = {"tool": "file_read", "effect_level": "E1", "session_id": "s"}
    body["args"] = {"xs": list(range(9000))}
    assert len(json.dumps(body)) > 50_000
    answer = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).json()
    assert answer["verdict"] == "DENY" and "CEL_MAX" in answer["reason"], answer


class _Panicking:
    def execute(self, _: Any) -> Any:
        raise PanicException("index out of bounds")


def test_a_panic_while_evaluating_denies() -> None:
    rule = Rule("a", "set", "sha256:x", expression="true", program=_Panicking())
    with pytest.raises(compiler.CelError, match="PanicException"):
        compiler.evaluate_cel(rule, {"input": {}})


def test_a_panic_while_compiling_is_a_compile_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def panic(_: str) -> Any:
        raise PanicException("entered unreachable code")

    monkeypatch.setattr(cel, "compile", panic)
    pack = {"pack_id": "p", "version": 1, "actions": [{"action": "a", "expression": "1 == 1"}]}
    with pytest.raises(PolicyFileError, match="PanicException"):
        compiler.compile_pack("x", pack, source="pack.json")


# -- reconcile failures ------------------------------------------------------------------------

FAULTS: list[BaseException] = [
    PanicException("entered unreachable code"),
    RuntimeError("boom"),
    KeyError("reconcile_status"),
    OSError(5, "I/O error"),
    RecursionError("deep"),
    MemoryError(),
]


class _Faulty(MountedFileSource):
    """A mounted source that raises ``fault`` from the stage ``where`` while it is set."""

    fault: BaseException | None = None
    where = "head"

    def head(self, scope: PolicyScope) -> Any:
        if self.fault is not None and self.where == "head":
            raise self.fault
        return super().head(scope)

    def load(self, scope: PolicyScope, head: Any) -> bytes:
        if self.fault is not None and self.where == "load":
            raise self.fault
        return super().load(scope, head)


@pytest.mark.parametrize("where", ["head", "load", "compile"])
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: type(f).__name__)
def test_every_reconcile_failure_keeps_lkg_then_expires_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, fault: BaseException
) -> None:
    clock = [time.time()]  # decisions read the wall clock: the fake one starts there
    toml = write_policy(tmp_path, [{"action": "file_read", "expression": "true"}])
    source = _Faulty(toml)
    snapshots = SnapshotStore()
    settings = ReconcileSettings(last_known_good_max_age_s=60)
    reconciler = Reconciler(source, snapshots, settings, clock=lambda: clock[0])
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "ok"
    write_policy(tmp_path, [{"action": "shell", "expression": "1 == 1"}])  # a new head
    source.fault, source.where = fault, where
    real_compile = cel.compile

    def faulty_compile(expression: str) -> Any:
        if source.fault is not None and where == "compile":
            raise source.fault
        return real_compile(expression)

    monkeypatch.setattr(cel, "compile", faulty_compile)
    refused = reconciler.reconcile(SCOPE)
    assert refused["reconcile_status"] != "ok" and refused["snapshot_status"] == "active"
    assert _probe(snapshots) == ("ALLOW", "")  # last known good still serves
    clock[0] += 61
    expired = reconciler.reconcile(SCOPE)
    assert expired["snapshot_status"] == "invalid", expired
    assert _probe(snapshots)[0] == "DENY"
    source.fault = None
    recovered = reconciler.reconcile(SCOPE)
    assert recovered["reconcile_status"] == "ok" and recovered["snapshot_status"] == "active"
    assert _probe(snapshots, action="shell")[0] == "ALLOW"


async def test_the_poll_loop_survives_a_panic_and_installs_the_next_good_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_policy(tmp_path, [{"action": "file_read", "expression": "true"}])
    snapshots = SnapshotStore()
    reconciler = Reconciler(MountedFileSource(toml), snapshots, ReconcileSettings())
    reconciler.reconcile(SCOPE)
    real_compile = cel.compile

    def panic(expression: str) -> Any:
        if "panic" in expression:
            raise PanicException("entered unreachable code")
        return real_compile(expression)

    monkeypatch.setattr(cel, "compile", panic)
    write_policy(tmp_path, [{"action": "shell", "expression": "'panic' != ''"}])
    poll = asyncio.create_task(_poll(SimpleNamespace(reconciler=reconciler, scope=SCOPE), 0.01))  # type: ignore[arg-type]
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if reconciler.last_status and reconciler.last_status["reconcile_status"] != "ok":
                break
        assert reconciler.last_status is not None
        assert reconciler.last_status["reconcile_status"] == "compile_error"
        assert "PanicException" in reconciler.last_status["reason"]
        write_policy(tmp_path, [{"action": "shell", "expression": "true"}])
        for _ in range(200):
            await asyncio.sleep(0.01)
            if _probe(snapshots, action="shell")[0] == "ALLOW":
                break
        assert not poll.done(), "the poll loop ended"
        assert _probe(snapshots, action="shell")[0] == "ALLOW"
    finally:
        poll.cancel()


def test_a_panicking_pack_at_start_up_is_a_startup_error(
    make_runtime: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def panic(_: str) -> Any:
        raise PanicException("entered unreachable code")

    monkeypatch.setattr(cel, "compile", panic)
    with pytest.raises(StartupError, match="PanicException"):
        make_runtime([{"action": "file_read", "expression": "1 == 1"}])


def test_an_expression_compiles_without_loading_cels_interactive_cli() -> None:
    """cel's package imports its CLI (typer, prompt_toolkit, rich: 0.3-0.6 s of a pod start
    whose policy has an expression); compiling and evaluating needs none of it."""
    script = (
        "import sys\n"
        "from helm_runbook.runtime.policy.compiler import compile_cel\n"
        "program = compile_cel('size(input.tools) == 2')\n"
        "print(program.execute({'input': {'tools': ['a', 'b']}}),"
        " sorted(m for m in ('typer', 'prompt_toolkit', 'rich') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    assert out.split() == ["True", "[]"]
