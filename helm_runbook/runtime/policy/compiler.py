"""Compile a reference pack into rules, a PDP allow-set and CEL programs (docs/upstream-contract.md#policy-file).

Each enabled action becomes a rule keyed by its action string; a non-blank ``expression``
becomes a requirement evaluated with CEL. Anything unexpected fails the compile (a typo in a
key must not silently drop a requirement).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from helm_runbook.formats.canonical import canonical_json, sha256_ref
from helm_runbook.formats.policy_bundle import PolicyFileError

# CEL work is bounded before it starts: the binding holds the GIL while it evaluates, so a slow
# expression would stall every thread of the runtime, the health port's included.
CEL_MAX_SOURCE_CHARS = 4096
CEL_MAX_NESTING = 32  # (, [ and { deep, outside string literals
CEL_MAX_INPUT_VALUES = 10_000  # every scalar, list and map in the request context fed to CEL
CEL_MAX_INPUT_DEPTH = 32
CEL_MAX_INPUT_STRING_BYTES = 256 << 10
CEL_MAX_COST = 5_000_000  # source chars x input values ^ comprehension macros (at least ^1)
# An expression without comprehension macros and without ``+`` (string and list concatenation
# chained N times copies N^2 / 2 times its input) runs in time linear in its input and is
# evaluated in-process; any other runs in the sandbox process, stopped at this wall-clock limit.
CEL_TIMEOUT_S = 1.0
_MACRO = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(")
_FATAL = (KeyboardInterrupt, SystemExit)  # the only BaseExceptions let through: shutdown


class CelError(Exception):
    """A CEL expression that is refused, fails to compile or fails to evaluate (fail closed)."""


def _code_outside_strings(expression: str) -> str:
    """The expression with string literals blanked and ``//`` comments removed, so brackets and
    macros in them do not count and a comment cannot hide a macro from the count."""
    out: list[str] = []
    i, n = 0, len(expression)
    while i < n:
        c = expression[i]
        if c == "/" and expression.startswith("//", i):
            end = expression.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
            continue
        if c not in "'\"":
            out.append(c)
            i += 1
            continue
        raw = i > 0 and expression[i - 1] in "rR"
        quote = expression[i : i + 3] if expression[i : i + 3] in ("'''", '"""') else c
        i += len(quote)
        while i < n and not expression.startswith(quote, i):
            i += 2 if expression[i] == "\\" and not raw else 1
        i += len(quote)
        out.append(" ")
    return "".join(out)


def cel_macros(expression: str) -> int:
    """Comprehension macros in ``expression`` (an upper bound on their nesting); raise CelError
    past the source-size or nesting limits."""
    if len(expression) > CEL_MAX_SOURCE_CHARS:
        raise CelError(
            f"expression is {len(expression)} characters, over {CEL_MAX_SOURCE_CHARS} "
            "(CEL_MAX_SOURCE_CHARS)"
        )
    code = _code_outside_strings(expression)
    depth = deepest = 0
    for c in code:
        depth += 1 if c in "([{" else -1 if c in ")]}" else 0
        deepest = max(deepest, depth)
    if deepest > CEL_MAX_NESTING:
        raise CelError(f"expression nests {deepest} deep, over {CEL_MAX_NESTING} (CEL_MAX_NESTING)")
    return len(_MACRO.findall(code))


def runs_inline(expression: str) -> bool:
    """True when ``expression`` runs in time linear in its input (no comprehension macro, no
    ``+``): evaluated in-process; otherwise in the sandbox under ``CEL_TIMEOUT_S``."""
    code = _code_outside_strings(expression)
    return not _MACRO.search(code) and "+" not in code


def load_cel() -> Any:
    """The cel package without its interactive CLI, imported on first use.

    cel's ``__init__`` imports ``cel.cli`` (typer, prompt_toolkit, rich: 0.3-0.6 s, in every pod
    start whose policy has an expression) before the compiled extension; the runtime only calls
    ``cel.compile``. ``cel.cli`` is registered as an empty module, so the package imports
    without it; ``python -m cel`` in its own process keeps its CLI."""
    if "cel" not in sys.modules:
        sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli", "not loaded by the runtime"))
    import cel

    return cel


def compile_cel(expression: str) -> Any:
    """A CEL program within the limits; any failure of the library (a parser panic is a
    BaseException) becomes CelError."""
    cel_macros(expression)
    cel = load_cel()
    try:
        return cel.compile(expression)
    except _FATAL:
        raise
    except BaseException as exc:
        raise CelError(f"does not compile: {type(exc).__name__}: {str(exc)[:300]}") from None


# Types that are no str, no Mapping and no list or tuple but for dict, list and tuple themselves.
_PLAIN = frozenset({dict, list, tuple, int, float, bool, type(None)})
# Integers the binding converts to a CEL int or uint (past them it tries a float, which overflows).
_CEL_INTS = range(-(2**63), 2**64)


def cel_input_values(value: Any) -> int:
    """How many values ``value`` holds; raise CelError past the input limits."""
    return _walk(value)[0]


def _walk(value: Any) -> tuple[int, bool]:
    """How many values ``value`` holds, and whether the binding converts every one of them
    (JSON's types, str keys, integers within 64 bits, text UTF-8 can write): only then may it
    get the fields a rule reads instead of all of them (``_prune``), with the same outcome.
    Raise CelError past the input limits (walked without recursion, stopping at the first
    limit). It runs per evaluate: the JSON types are told apart by their type, and only other
    types take isinstance (an ABC check costs about 1 us)."""
    count, text, plain = 0, 0, True
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        count += 1
        if count > CEL_MAX_INPUT_VALUES:
            raise CelError(
                f"request context holds over {CEL_MAX_INPUT_VALUES} values (CEL_MAX_INPUT_VALUES)"
            )
        if depth > CEL_MAX_INPUT_DEPTH:
            raise CelError(
                f"request context nests over {CEL_MAX_INPUT_DEPTH} deep (CEL_MAX_INPUT_DEPTH)"
            )
        kind = type(item)
        other = kind not in _PLAIN  # only then can isinstance say more than the type does
        if kind is str:
            text += len(item)
            plain = plain and (item.isascii() or _utf8(item))
        elif other and isinstance(item, str):
            text += len(item)
            plain = False
        elif kind is dict or (other and isinstance(item, Mapping)):
            depth += 1
            plain = plain and not other
            for key, child in item.items():
                if type(key) is str:
                    text += len(key)
                    plain = plain and (key.isascii() or _utf8(key))
                else:
                    text += len(str(key))
                    plain = False
                push((child, depth))
        elif kind is list or kind is tuple or (other and isinstance(item, (list, tuple))):
            depth += 1
            plain = plain and not other
            stack.extend([(child, depth) for child in item])
        elif kind is int:
            plain = plain and item in _CEL_INTS
        elif other:
            plain = False
        if text > CEL_MAX_INPUT_STRING_BYTES:
            raise CelError(
                f"request context holds over {CEL_MAX_INPUT_STRING_BYTES} characters of text "
                "(CEL_MAX_INPUT_STRING_BYTES)"
            )
    return count, plain


def _utf8(text: str) -> bool:
    """``text`` has no lone surrogate: the binding can take it as a CEL string."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# A field of ``input`` selected by name: ``.name``, spaces allowed around the dot.
_SELECT = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_CALL = re.compile(r"\s*\(")
_INPUT = re.compile(r"(?<![A-Za-z0-9_])input(?![A-Za-z0-9_])")
# A tree of field names: a name maps to the fields read below it, or to None for its whole value.
Fields = dict[str, "Fields | None"]


def input_fields(expression: str) -> Fields | None:
    """The fields of ``input`` that ``expression`` can read, or None when it may read all of
    ``input``. Every ``input`` outside string literals and comments counts (one that is a
    macro's variable or another value's field only keeps more): each is followed through
    ``.name`` selections up to an index, a call, an optional ``.?`` or anything else, and the
    value reached is kept whole. A rule never sees the maps above the fields it reads other
    than through those selections, so it decides as it would on the whole input."""
    code = _code_outside_strings(expression)
    if len(_INPUT.findall(code)) != len(_INPUT.findall(expression)):
        # "input" in a string or a comment: if the tokenizer ever took code for a string, the
        # reference it hid would be cut from what the rule sees, so such a rule gets it all.
        return None
    fields: Fields = {}
    for found in _INPUT.finditer(code):
        path: list[str] = []
        at = found.end()
        while len(path) < CEL_MAX_INPUT_DEPTH and (select := _SELECT.match(code, at)):
            if _CALL.match(code, select.end()):
                break  # a method of the value reached so far (size, all, startsWith...)
            path.append(select.group(1))
            at = select.end()
        if not path:
            return None
        node = fields
        for name in path[:-1]:
            below = node.setdefault(name, {})
            if below is None:  # kept whole already
                break
            node = below
        else:
            node[path[-1]] = None
    return fields


def fields_read(rule: Rule, cel_input: Mapping[str, Any]) -> dict[str, Any]:
    """What the rule's program gets: ``input`` cut to the fields its expression reads (the
    binding converts every value it is given, 1.5-2.5 us each). Only for an input whose every
    value the binding converts (``_walk``): one it refuses must be refused wherever it is."""
    variables = dict(cel_input)
    if rule.fields is not None and type(variables.get("input")) is dict:
        variables["input"] = _prune(variables["input"], rule.fields)
    return variables


def _prune(value: Any, fields: Fields) -> Any:
    """``value`` with only ``fields`` kept; what is not a dict cannot be selected into and
    stays whole."""
    if type(value) is not dict:
        return value
    kept = {}
    for name, below in fields.items():
        if name in value:
            kept[name] = value[name] if below is None else _prune(value[name], below)
    return kept


def evaluate_cel(rule: Rule, cel_input: Mapping[str, Any]) -> Any:
    """Run ``rule``'s program on ``cel_input`` when its worst-case cost is within CEL_MAX_COST;
    any failure of the library becomes CelError."""
    values, plain = _walk(cel_input)
    cost = len(rule.expression) * values ** max(rule.macros, 1)
    if cost > CEL_MAX_COST:
        raise CelError(
            f"cost bound {len(rule.expression)} chars x {values} values ^ {max(rule.macros, 1)} "
            f"exceeds {CEL_MAX_COST} (CEL_MAX_COST)"
        )
    if not rule.inline:
        return SANDBOX.evaluate(rule.expression, cel_input)
    try:
        return rule.program.execute(fields_read(rule, cel_input) if plain else dict(cel_input))
    except _FATAL:
        raise
    except BaseException as exc:
        raise CelError(f"{type(exc).__name__}: {str(exc)[:300]}") from None


def blocks(rule: Rule | None) -> bool:
    """True when evaluating ``rule`` may wait on the sandbox: call it off the event loop."""
    return rule is not None and rule.program is not None and not rule.inline


class CelSandbox:
    """CEL evaluation in a worker process (``cel_worker``) the runtime kills at
    ``CEL_TIMEOUT_S``: the binding cannot be interrupted and holds the GIL, so in-process a slow
    expression would stall every thread, the health port's included. One worker, one expression
    at a time; a caller that cannot get it within the limit is refused (fail closed). The worker
    starts on first use and again after a kill."""

    def __init__(self, timeout_s: float = CEL_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def evaluate(self, expression: str, cel_input: Mapping[str, Any]) -> Any:
        line = json.dumps({"e": expression, "i": cel_input}).encode() + b"\n"
        if not self._lock.acquire(timeout=self.timeout_s):
            raise CelError(f"the CEL sandbox stayed busy for {self.timeout_s:g}s (CEL_TIMEOUT_S)")
        try:
            proc = self._worker()
            deadline = time.monotonic() + self.timeout_s
            try:
                assert proc.stdin is not None
                proc.stdin.write(line)
                proc.stdin.flush()
                answer = self._line(proc, deadline)
            except OSError:
                answer = None
            if answer is None:
                self._kill()
                raise CelError(
                    f"evaluation did not finish within {self.timeout_s:g}s (CEL_TIMEOUT_S): "
                    "the expression was stopped"
                )
        finally:
            self._lock.release()
        doc = json.loads(answer)
        if "error" in doc:
            raise CelError(str(doc["error"]))
        if "type" in doc:
            raise CelError(f"returned {doc['type']}, not bool")
        return doc["value"]

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        proc = subprocess.Popen(
            [sys.executable, "-m", "helm_runbook.runtime.policy.cel_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._proc = proc
        if self._line(proc, time.monotonic() + 30.0) is None:
            self._kill()
            raise CelError("the CEL sandbox worker did not start")
        return proc

    @staticmethod
    def _line(proc: subprocess.Popen[bytes], deadline: float) -> bytes | None:
        """One line from the worker by ``deadline``, else None."""
        assert proc.stdout is not None
        fd, data = proc.stdout.fileno(), b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            data += chunk
        return data

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def close(self) -> None:
        with self._lock:
            self._kill()


SANDBOX = CelSandbox()
atexit.register(SANDBOX.close)


_ITEM_KEYS = frozenset(
    {"action", "resource", "enabled", "requirement_set", "expression", "description"}
)


@dataclass(frozen=True)
class Rule:
    """One compiled rule: the requirement set a request for ``action`` must satisfy."""

    action: str
    requirement_set_id: str
    requirement_set_hash: str
    expression: str = ""
    program: Any = field(default=None, compare=False, repr=False)
    macros: int = 0  # comprehension macros in ``expression``: the exponent of its cost bound
    inline: bool = True  # evaluated in-process (``runs_inline``), else in the sandbox
    # The fields of ``input`` the expression reads (``input_fields``); None: all of them.
    fields: Fields | None = field(default=None, compare=False, repr=False)
    resource: str = ""
    description: str = ""


@dataclass(frozen=True)
class CompiledPolicy:
    """Immutable compiled form; ``allow`` is the PDP allow-map (the rule keys)."""

    name: str
    pack_id: str
    rules: dict[str, Rule]
    allow: frozenset[str]


def parse_pack(data: bytes, *, source: str) -> dict[str, Any]:
    try:
        pack = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(pack, dict):
        raise PolicyFileError(f"{source}: must be a JSON object with pack_id and version")
    if not isinstance(pack.get("pack_id"), str) or not pack["pack_id"].strip():
        raise PolicyFileError(f"{source}: pack_id is required")
    if "version" not in pack:
        raise PolicyFileError(f"{source}: version is required")
    return pack


def compile_pack(policy_name: str, pack: dict[str, Any], *, source: str) -> CompiledPolicy:
    """Build the rules of ``runtime_actions`` + ``actions``; raise PolicyFileError on any defect."""
    items: list[Any] = []
    for key in ("runtime_actions", "actions"):
        value = pack.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            raise PolicyFileError(f"{source}: {key} must be a list")
        items.extend(value)
    rules: dict[str, Rule] = {}
    for index, item in enumerate(items):
        where = f"{source}: action #{index + 1}"
        if not isinstance(item, dict):
            raise PolicyFileError(f"{where} must be an object with an 'action' key")
        unknown = sorted(set(item) - _ITEM_KEYS)
        if unknown:
            raise PolicyFileError(
                f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ITEM_KEYS))}"
            )
        action = item.get("action")
        if not isinstance(action, str) or not action.strip():
            raise PolicyFileError(f"{where}: action must be a non-blank string")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise PolicyFileError(f"{where} ({action}): enabled must be true or false")
        if not enabled:
            continue
        if action in rules:
            raise PolicyFileError(f"{where}: action {action!r} is defined twice")
        expression = item.get("expression") or ""
        if not isinstance(expression, str):
            raise PolicyFileError(f"{where} ({action}): expression must be a string")
        set_id = item.get("requirement_set") or f"{policy_name}:{action}"
        if not isinstance(set_id, str):
            raise PolicyFileError(f"{where} ({action}): requirement_set must be a string")
        program, macros = None, 0
        requirements = []
        if expression.strip():
            try:
                macros = cel_macros(expression)
                program = compile_cel(expression)
            except CelError as exc:
                raise PolicyFileError(f"{where} ({action}): CEL expression refused: {exc}") from exc
            requirements.append({"id": f"{set_id}:expression", "expression": expression})
        set_hash = sha256_ref(
            canonical_json({"id": set_id, "logic": "AND", "requirements": requirements})
        )
        rules[action] = Rule(
            action=action,
            requirement_set_id=set_id,
            requirement_set_hash=set_hash,
            expression=expression,
            program=program,
            macros=macros,
            inline=runs_inline(expression) if program is not None else True,
            fields=input_fields(expression) if program is not None else None,
            resource=str(item.get("resource") or ""),
            description=str(item.get("description") or ""),
        )
    return CompiledPolicy(
        name=policy_name, pack_id=pack["pack_id"], rules=rules, allow=frozenset(rules)
    )
