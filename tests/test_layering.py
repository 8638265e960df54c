"""One home for each dependency: the adapters that may import a third-party client, checked with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "helm_runbook"

# module prefix -> the only files (relative to helm_runbook/) allowed to import it
ADAPTERS = {
    "helm_python": {"chart/sdk.py"},
    "kubernetes": {"targets/kube.py", "runtime/policy/crd.py"},
    "psycopg": {"runtime/store/postgres.py"},
    "sqlite3": {"runtime/store/sqlite.py"},
}
# The operator side talks HTTP to a runtime only through client.py; the local target's kubelet
# probe and the hostile-client tool (an attacker, malformed on purpose) are the other callers.
# The runtime's own HTTP (upstream, control plane) is its own; observability.py talks to
# Prometheus's API (never to a runtime).
HTTP_CLIENTS = {"client.py", "targets/local.py", "hostile.py", "observability.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_third_party_clients_have_one_home() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for module in _imports(path):
            top = module.split(".")[0]
            allowed = ADAPTERS.get(top)
            if allowed is not None and rel not in allowed:
                offenders.append(f"{rel} imports {module} (allowed only in {sorted(allowed)})")
    assert offenders == []


def test_the_operator_side_reaches_a_runtime_only_through_the_client() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("runtime/") or rel in HTTP_CLIENTS:
            continue
        offenders += [f"{rel} imports {m}" for m in _imports(path) if m.split(".")[0] == "httpx"]
    assert offenders == []


def test_the_runtime_imports_no_operator_code() -> None:
    offenders = []
    for path in sorted((PACKAGE / "runtime").rglob("*.py")):
        for module in _imports(path):
            if module.startswith("helm_runbook") and not module.startswith("helm_runbook.runtime"):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offenders == []


def test_env_is_read_only_in_settings() -> None:
    """Every HELM_* variable of the runtime is read in runtime/settings.py."""
    offenders = []
    for path in sorted((PACKAGE / "runtime").rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "runtime/settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "environ":
                offenders.append(f"{rel}:{node.lineno} reads os.environ")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "getenv":
                offenders.append(f"{rel}:{node.lineno} calls getenv")
    assert offenders == []
