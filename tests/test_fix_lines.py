"""Every ``fix=`` line is advice an operator can follow as written: it names the runbook that fixes
it by number, and each shell command it suggests is valid (known kubectl and helm verbs,
``kubectl create secret generic``, ``helm-runbook <sub> --help`` exits 0).

The lines are read from the source (every ``fix=`` keyword of the package), with each formatted
value of an f-string standing in as a placeholder, so a new fix line is checked without a test
that reaches it."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_runbook.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "helm_runbook"
PLACEHOLDER = "NAME"
COMMAND = re.compile(r"(?<![\w.-])(kubectl|helm-runbook|helm)\s+([^`;,()]*)")
KUBECTL_VERBS = {"create", "delete", "get", "describe", "logs", "rollout", "port-forward", "apply",
                 "config", "label", "annotate", "edit", "exec", "patch", "cluster-info", "auth"}  # fmt: skip
KUBECTL_SUBVERBS = {
    ("create", "secret"): {"generic", "tls", "docker-registry"},
    ("create",): {"secret", "configmap", "namespace", "serviceaccount"},
    ("rollout",): {"status", "restart", "history", "undo"},
    ("config",): {"get-contexts", "use-context", "current-context", "view"},
    ("auth",): {"whoami", "can-i"},
}
HELM_VERBS = {"install", "upgrade", "uninstall", "status", "list", "lint", "template", "get",
              "history", "rollback", "test"}  # fmt: skip
VAGUE_RUNBOOK = re.compile(r"(?<!helm-)\brunbook\b(?!s? \d\d| needs)")


def _texts(node: ast.expr) -> list[str]:
    """Every string ``node`` can evaluate to, formatted values as PLACEHOLDER."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out = [""]
        for part in node.values:
            pieces = _texts(part) if isinstance(part, ast.Constant) else [PLACEHOLDER]
            out = [a + b for a in out for b in pieces]
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _texts(node.left) for b in _texts(node.right)]
    if isinstance(node, ast.IfExp):
        return _texts(node.body) + _texts(node.orelse)
    return []  # a variable or a computed fix (Helm's guard message): checked where it is made


def fix_lines() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "fix":
                for text in _texts(node.value):
                    yield f"{path.relative_to(PACKAGE)}:{node.value.lineno}", text


def _problem(tool: str, args: str) -> str | None:
    """Why ``tool args`` is not a valid command, or None."""
    words = [w for w in args.split() if w not in {"...", "-"}]
    while words and words[0].startswith("-"):  # -n NS, --context NAME before the verb
        words = words[2:] if len(words) > 1 and "=" not in words[0] else words[1:]
    if tool == "kubectl":
        if not words or words[0] not in KUBECTL_VERBS:
            return f"kubectl has no verb {words[:1]}"
        for prefix, allowed in KUBECTL_SUBVERBS.items():
            if tuple(words[: len(prefix)]) == prefix and (
                len(words) <= len(prefix) or words[len(prefix)] not in allowed
            ):
                return f"`kubectl {' '.join(prefix)}` needs one of {sorted(allowed)}"
    elif tool == "helm":
        if not words or words[0] not in HELM_VERBS:
            return f"helm has no verb {words[:1]}"
    else:
        sub = [w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]+", w)]
        if len(sub) == 2 and sub[0] not in {"policy"}:
            sub = sub[:1]
        with pytest.raises(SystemExit) as exited:
            main([*sub, "--help"])
        if exited.value.code != 0:
            return f"`helm-runbook {' '.join(sub)} --help` exits {exited.value.code}"
    return None


LINES = list(fix_lines())


def test_fix_lines_are_found() -> None:
    assert len(LINES) > 50  # the extraction still reads the package


@pytest.mark.parametrize(("where", "fix"), LINES, ids=[w for w, _ in LINES])
def test_every_suggested_command_is_valid_as_written(
    where: str, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    problems = [p for tool, args in COMMAND.findall(fix) if (p := _problem(tool, args))]
    capsys.readouterr()
    assert not problems, f"{where}: {fix!r}: {problems}"


@pytest.mark.parametrize(("where", "fix"), LINES, ids=[w for w, _ in LINES])
def test_every_runbook_a_fix_names_is_named_by_number(where: str, fix: str) -> None:
    assert not VAGUE_RUNBOOK.search(fix), f"{where}: {fix!r} does not say which runbook"
    assert "the install step" not in fix, f"{where}: {fix!r}: which runbook installs?"


def test_the_checker_refuses_what_the_issue_found() -> None:
    assert _problem("kubectl", "create secret helm-signing --from-literal=signing-key=X")
    assert _problem("kubectl", "-n ops create secret generic helm-signing") is None
    assert _problem("helm", "instal helm-ai-kernel")
    assert _problem("helm-runbook", "polcy sign")
    assert VAGUE_RUNBOOK.search("run the secret setup runbook first")
