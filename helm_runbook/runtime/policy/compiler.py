"""Compile a reference pack into rules, a PDP allow-set and CEL programs (docs/upstream-contract.md#policy-file).

Each enabled action becomes a rule keyed by its action string; a non-blank ``expression``
becomes a requirement evaluated with CEL. Anything unexpected fails the compile (a typo in a
key must not silently drop a requirement).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cel

from helm_runbook.runtime.canonical import canonical_json, sha256_ref
from helm_runbook.runtime.policy.bundle import PolicyFileError

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
        program = None
        requirements = []
        if expression.strip():
            try:
                program = cel.compile(expression)
            except (ValueError, RuntimeError) as exc:
                raise PolicyFileError(
                    f"{where} ({action}): CEL expression does not compile: {exc}"
                ) from exc
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
            resource=str(item.get("resource") or ""),
            description=str(item.get("description") or ""),
        )
    return CompiledPolicy(
        name=policy_name, pack_id=pack["pack_id"], rules=rules, allow=frozenset(rules)
    )
