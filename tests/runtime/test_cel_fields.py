"""A rule gets only the fields of ``input`` its expression reads (``compiler.input_fields``):
the binding converts every value it is given, 1.5-2.5 us each. Whatever the expression and the
request, the rule decides (or fails) exactly as it does on the whole input."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helm_runbook.runtime.guardian import cel_input
from helm_runbook.runtime.policy import compiler
from helm_runbook.runtime.policy.compiler import CelError, Rule, compile_pack, input_fields

NAMES = ("effect", "params", "args", "path", "action", "timestamp", "taint", "artifacts",
         "effect_type", "a", "b", "size", "input")  # fmt: skip
DOT = st.sampled_from((".", " .", ". ", "\n.", ".// note\n"))


@st.composite
def selections(draw: st.DrawFn) -> str:
    """``input`` followed by selections and maybe an index, a call, an optional or a macro."""
    names = draw(st.lists(st.sampled_from(NAMES), max_size=5))
    text = "input" + "".join(draw(DOT) + name for name in names)
    return text + draw(
        st.sampled_from(("", "", ".size()", '["a"]', ".?a.orValue(1)", '.startsWith("/")',
                         '.exists(k, k == "a")', ".all(x, x != 1)", ".map(x, x)"))
    )  # fmt: skip


@st.composite
def expressions(draw: st.DrawFn) -> str:
    """Comparisons, has(), in and boolean operators over selections of ``input``."""
    leaf = draw(selections())
    shape = draw(st.sampled_from(("{s}", '{s} == "/etc/hostname"', "{s} == 1", "has({s})",
                                  '"a" in {s}', "size({s}) > 1", "!{s}", "{s} == {t}",
                                  "{s} && {t}", "{s} || {t}", "({s} ? {t} : {s})",
                                  "[1].all(input, {s})", '"input.a" == {s}')))  # fmt: skip
    return shape.format(s=leaf, t=draw(selections()))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.sampled_from(("/etc/hostname", "", "a", "ü", "\ud800")),
)  # fmt: skip
contexts = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=2).map(tuple)
    | st.dictionaries(st.sampled_from(NAMES) | st.integers(0, 2) | st.none(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def outcome(rule: Rule, value: dict[str, Any]) -> Any:
    try:
        result = compiler.evaluate_cel(rule, value)
    except CelError as exc:
        return ("refused", str(exc))
    if isinstance(result, list | dict):  # a CEL map iterates in no fixed order, whole or not
        return ("value", type(result), sorted(map(repr, result)))
    return ("value", result)


@settings(deadline=None, max_examples=400)  # no timed assertions: a busy machine is no failure
@given(expressions(), st.dictionaries(st.sampled_from(NAMES), contexts, max_size=4))
def test_a_rule_decides_on_the_fields_it_reads_as_on_the_whole_input(
    expression: str, context: dict[str, Any]
) -> None:
    try:
        program = compiler.compile_cel(expression)
    except CelError:
        return  # the pack is refused before any request
    # In-process whatever its macros (the sandbox has no part in this comparison).
    whole = Rule("a", "set", "sha256:x", expression=expression, program=program, inline=True)
    read = dataclasses.replace(whole, fields=input_fields(expression))
    value = cel_input("file_read", context, time.time_ns())
    assert outcome(read, value) == outcome(whole, value)


def test_the_benchmark_rule_reads_one_path_and_a_method_keeps_its_receiver_whole() -> None:
    assert input_fields('input.effect.params.args.path == "/etc/hostname"') == {
        "effect": {"params": {"args": {"path": None}}}
    }
    assert input_fields('input.effect.params.size() > 1 && input.action == "x"') == {
        "effect": {"params": None},
        "action": None,
    }
    # A shorter path keeps its whole value, whichever comes first.
    assert input_fields("input.effect.params.args.a && input.effect.params") == {
        "effect": {"params": None}
    }
    assert input_fields("input.effect.params && input.effect.params.args.a") == {
        "effect": {"params": None}
    }


@pytest.mark.parametrize(
    "expression",
    ['input["effect"].params', "input.?effect.orValue(1)", "size(input) > 0", "dyn(input).action",
     "input", "input.`effect`", '[1].all(input, input > 0) && input.action == "x"',
     # "input" inside a string or a comment: the rule gets it all, whatever the tokenizer saw
     'input.action == "input.effect"', "input.action == 'x' // input.effect"],
)  # fmt: skip
def test_input_read_other_than_by_selection_is_given_whole(expression: str) -> None:
    assert input_fields(expression) is None


def test_a_compiled_rule_carries_its_fields_and_its_outcome_on_a_value_the_binding_refuses() -> (
    None
):
    pack = {"pack_id": "p", "version": 1,
            "actions": [{"action": "a", "expression": 'input.effect.params.args.path == "/x"'}]}  # fmt: skip
    rule = compile_pack("helm", pack, source="test").rules["a"]
    assert rule.fields == {"effect": {"params": {"args": {"path": None}}}}
    # A value the binding cannot convert beside the one read: refused as on the whole input.
    for odd in ({"path": "/x", "n": 10**400}, {"path": "/x", "s": "\ud800"},
                {"path": "/x", None: 2}, {"path": "/x", "o": object()}):  # fmt: skip
        value = cel_input("a", {"args": odd}, time.time_ns())
        with pytest.raises(CelError, match="onversion"):
            compiler.evaluate_cel(rule, value)
    value = cel_input("a", {"args": {"path": "/x", "n": 10**18, "s": "ü", 1: 2}}, time.time_ns())
    assert compiler.evaluate_cel(rule, value) is True
