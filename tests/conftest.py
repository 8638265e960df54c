"""Shared fixtures: policy bundles on disk, in-process runtimes, ASGI clients, free ports."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from helm_runbook.imports import skip_iri_grammars
from helm_runbook.runtime.app import create_app
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.server import build_runtime
from helm_runbook.runtime.settings import Settings
from helm_runbook.steps.policy import SERVE_POLICY  # one copy of the chart-shaped policy
from helm_runbook.tools.client import Credentials
from tests.postgres_server import PostgresServer, postgres_bin

if TYPE_CHECKING:
    from tests.kube_emulator import BackgroundKmock

skip_iri_grammars()  # each worker that imports papermill or nbformat: a second (helm_runbook/imports.py)

ADMIN_KEY = "test-admin-key-0123456789"
SERVICE_KEY = "test-service-key-0123456789"
TENANT = "default"
PRINCIPAL = "system-admin"
CREDENTIALS = Credentials(ADMIN_KEY, SERVICE_KEY, TENANT, PRINCIPAL)
TENANT_HEADERS = {
    "Authorization": f"Bearer {ADMIN_KEY}",
    "X-Helm-Tenant-ID": TENANT,
    "X-Helm-Principal-ID": PRINCIPAL,
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each item a node id of its own: schemathesis names an operation's item
    ``test[GET /healthz]`` but gives every operation the function's node id, so ``pytest -n``
    (which schedules by node id) ran one operation of 14 and a failure could not be re-run by id."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and not item.nodeid.endswith(f"::{item.name}"):
            assert item.parent is not None
            item._id = item.parent.id.child(item.name)  # the id pytest gives any other item


def write_policy(directory: Path, actions: list[dict[str, Any]] | None = None) -> Path:
    """Write serve-policy.toml + reference-pack.json as the chart's ConfigMap mounts them."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "serve-policy.toml").write_text(SERVE_POLICY)
    pack = {
        "pack_id": "helm-chart-reference-pack",
        "label": "test pack",
        "version": 1,
        "runtime_actions": actions or [],
    }
    (directory / "reference-pack.json").write_text(json.dumps(pack))
    return directory / "serve-policy.toml"


def default_env() -> dict[str, str]:
    return {"HELM_ADMIN_API_KEY": ADMIN_KEY, "HELM_SERVICE_API_KEY": SERVICE_KEY}


RuntimeFactory = Callable[..., Runtime]


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Build in-process runtimes (start-up steps 2-5) over tmp dirs; closes their stores."""
    built: list[Runtime] = []

    def factory(
        actions: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> Runtime:
        policy = write_policy(tmp_path / "policy", actions)
        settings = Settings.from_env(
            policy_path=policy,
            addr="127.0.0.1",
            port=0,
            data_dir=data_dir or tmp_path / "data",
            environ={**default_env(), **(env or {})},
        )
        runtime = build_runtime(settings)
        built.append(runtime)
        return runtime

    yield factory
    for runtime in built:
        runtime.store.close()


@pytest.fixture
def client_for() -> Callable[[Runtime], TestClient]:
    """An in-process ASGI client for a runtime's API app."""

    def factory(runtime: Runtime) -> TestClient:
        return TestClient(create_app(runtime), raise_server_exceptions=False)

    return factory


ALLOW_FILE_READ = [
    {"action": "file_read", "expression": 'input.effect.params.args.path == "/etc/hostname"'},
    {"action": "LLM_INFERENCE"},
]


@pytest.fixture
def runtime(make_runtime: RuntimeFactory) -> Runtime:
    return make_runtime(ALLOW_FILE_READ)


@pytest.fixture
def client(runtime: Runtime, client_for: Callable[[Runtime], TestClient]) -> TestClient:
    return client_for(runtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (Debian's package; `make system-deps` installs it)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL is not installed: run `make system-deps` (apt-get install postgresql)"
        )
    with PostgresServer(bin_dir) as server:
        yield server


@pytest.fixture
def pg_url(pg: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg.create_database()


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundKmock]:
    """One emulated Kubernetes API server (kmock) per test module, on 127.0.0.1."""
    from tests.kube_emulator import BackgroundKmock

    with BackgroundKmock() as km:
        yield km
