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
# The operator side talks HTTP to a runtime only through tools/client.py; the local target's kubelet
# probe and the hostile-client tool (an attacker, malformed on purpose) are the other callers.
# The runtime's own HTTP (upstream, control plane) is its own; observability.py talks to
# Prometheus's API (never to a runtime).
HTTP_CLIENTS = {
    "tools/client.py",
    "targets/local.py",
    "standins/hostile.py",
    "standins/observability.py",
}


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


# The runtime builds on the formats (receipts, keys, canonical JSON, policy bundles, evidence
# packs) and on nothing else of the package.
SHARED_WITH_OPERATOR = ("helm_runbook.runtime", "helm_runbook.formats")
# The operator side reads the runtime's formats from helm_runbook.formats; it imports the runtime
# itself only to report its version and to document its settings and routes on the site.
RUNTIME_FOR_THE_OPERATOR = {
    "helm_runbook.runtime",
    "helm_runbook.runtime.settings",
    "helm_runbook.runtime.routes",
}


def test_the_operator_side_uses_the_runtime_only_through_formats_version_and_docs() -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    offenders = []
    for name, path in sorted(modules.items()):
        if name.startswith(SHARED_WITH_OPERATOR):
            continue
        for target in _imported_modules(path, modules):
            if target.startswith("helm_runbook.runtime") and target not in RUNTIME_FOR_THE_OPERATOR:
                offenders.append(f"{name} imports {target} (formats live in helm_runbook.formats)")
    assert offenders == []


def test_the_runtime_imports_no_operator_code() -> None:
    offenders = []
    for path in sorted((PACKAGE / "runtime").rglob("*.py")):
        for module in _imports(path):
            if module.startswith("helm_runbook") and not module.startswith(SHARED_WITH_OPERATOR):
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_package_has_no_import_circle() -> None:
    """Every import between the package's modules, type-checking and function-local ones
    included, forms no cycle (the runtime's handlers share ``runtime/context.py``, a leaf)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            else:
                continue
            targets |= {t for t in found if t in modules and t != name}
        # a package's __init__ re-exporting its modules is not a circle through the package
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


# The package's layers, lowest first: a module imports only from its own layer or a lower one
# (function-local and type-checking imports included). The longest matching prefix places a module.
LAYERS = {
    "helm_runbook.formats": 0,  # receipts, keys, canonical JSON, policy bundles, evidence packs
    "helm_runbook.imports": 0,  # import steering shared by every process
    "helm_runbook.runtime": 1,  # the reference runtime: knows nothing of the operator side
    "helm_runbook.errors": 1,
    "helm_runbook.harness": 1,  # step plumbing: results, records, the papermill engine, the kernel
    "helm_runbook.chart": 2,  # Helm's SDK, values, schemas
    "helm_runbook.standins": 2,  # stand-in neighbours and test seams
    "helm_runbook.targets": 3,
    "helm_runbook.tools": 3,  # operator tools usable without a runbook
    "helm_runbook.steps": 4,  # runbook steps: tools and targets with a recorded result
    "helm_runbook.site": 5,  # the docs site built from the executed runbooks
    "helm_runbook.runner": 6,  # the runner: an application over steps, targets and the site
    "helm_runbook.usage": 6,  # the argument parser the CLI and the runner share
    "helm_runbook.cli": 6,
    "helm_runbook.__main__": 6,
    "helm_runbook": 6,  # the public API re-exports everything
}


def _layer(module: str) -> int:
    candidates = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    assert candidates, f"{module} has no layer: add its package to LAYERS"
    return LAYERS[max(candidates, key=len)]


def _imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``path`` imports: ``from a.b import c`` counts ``a.b.c`` when it is a
    module, else ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules}


def test_each_module_imports_only_its_own_layer_or_lower() -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    offenders = []
    for name, path in sorted(modules.items()):
        for target in _imported_modules(path, modules):
            if target != name and _layer(target) > _layer(name):
                offenders.append(
                    f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})"
                )
    assert offenders == []


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        _layer(_module_name(path))  # raises naming the module


def test_the_errors_import_nothing_of_the_package() -> None:
    """Every layer raises them, so they import none of it: the harness registers its failure
    recorder with ``errors.when_shown`` instead of being imported by the errors."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    assert _imported_modules(PACKAGE / "errors.py", modules) == set()
