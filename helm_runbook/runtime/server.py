"""Start-up in upstream's fail-closed order (docs/upstream-contract.md#startup-order), then serve the API and health ports.

1. bind the API listener; 2. open storage; 3. load (or, in dev, create) the root signer;
4. evidence signer; 5. initial policy reconcile within its timeout; 6. serve, with the poll loop.
Any failure raises ``StartupError`` before the health port opens, so a broken pod crash-loops
instead of sitting not-ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.server import Server

from helm_runbook.formats.keys import KeyMaterialError
from helm_runbook.formats.policy_bundle import PolicyFileError
from helm_runbook.runtime import KERNEL_VERSION
from helm_runbook.runtime.app import create_app, create_health_app, create_metrics_app
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.edge import bounded_protocol
from helm_runbook.runtime.kernel import Kernel
from helm_runbook.runtime.keys import evidence_signer, load_root_signer
from helm_runbook.runtime.limits import (
    MAX_HEADER_BYTES,
    BodyBudget,
    ConcurrencyGate,
    LimitSettings,
    RateLimiter,
)
from helm_runbook.runtime.log import configure, log
from helm_runbook.runtime.policy.compiler import load_cel
from helm_runbook.runtime.policy.epochs import EPOCHS_FILE, InstalledEpochs
from helm_runbook.runtime.policy.reconciler import Reconciler, ReconcileSettings, log_reconcile
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import ControlPlaneSource, MountedFileSource, PolicySource
from helm_runbook.runtime.settings import Settings
from helm_runbook.runtime.store.base import ReceiptStore, StoreUnavailable
from helm_runbook.runtime.store.sqlite import SQLiteReceiptStore


class StartupError(Exception):
    """Start-up refused; the message is what the operator sees before the process exits 1."""


@dataclass
class Listeners:
    api: socket.socket
    health: socket.socket
    metrics: socket.socket | None = None


def _bind(addr: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((addr, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"listen tcp {addr}:{port} ({what}): {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def open_store(settings: Settings) -> ReceiptStore:
    """PostgreSQL when ``DATABASE_URL`` is set (docs/upstream-contract.md#environment), else SQLite in the data dir."""
    if settings.database_url is not None:
        from helm_runbook.runtime.store.postgres import (
            PostgresReceiptStore,
        )  # only this mode needs psycopg

        pool = settings.db
        try:
            return PostgresReceiptStore(str(settings.database_url), max_open=pool.max_open_conns,
                                        max_idle=pool.max_idle_conns, max_lifetime_s=pool.conn_max_lifetime_s,
                                        production=settings.production)  # fmt: skip
        except (ValueError, StoreUnavailable) as exc:
            raise StartupError(redact_fragments(str(exc), str(settings.database_url))) from None
    try:
        return SQLiteReceiptStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    except StoreUnavailable as exc:
        raise StartupError(str(exc)) from exc


def redact_fragments(message: str, secret: str) -> str:
    """``message`` without any quoted fragment of ``secret``: a connection-string parser quotes
    the part it choked on, which may be part of the password."""

    def scrub(match: re.Match[str]) -> str:
        inner = match.group(1)
        return '"<redacted>"' if inner and inner in secret else match.group(0)

    return re.sub(r'"([^"]*)"', scrub, message)


def policy_source(settings: Settings) -> PolicySource:
    """The configured source (``HELM_POLICY_SOURCE_KIND``)."""
    kind = settings.policy.source_kind
    if kind == "controlplane":
        token = settings.policy.bearer_token
        return ControlPlaneSource(settings.policy.controlplane_url, str(token) if token else None)
    if kind == "crd":
        from helm_runbook.runtime.policy.crd import CrdSource  # only this mode needs kubernetes

        policy = settings.policy
        return CrdSource.from_settings(
            policy.crd_api_group, policy.crd_resource, policy.crd_namespace
        )
    return MountedFileSource(settings.policy_path)


def build_runtime(settings: Settings) -> Runtime:
    """Steps 2-5 of the start-up order; raises StartupError with the operator-facing reason."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    store = open_store(settings)
    try:
        signer, created = load_root_signer(settings.data_dir, production=settings.production)
        ev_signer = evidence_signer(
            str(settings.evidence_signing_key) if settings.evidence_signing_key else None,
            production=settings.production,
            fallback=signer,
        )
    except KeyMaterialError as exc:
        store.close()
        raise StartupError(str(exc)) from exc
    log(
        "trust root ready",
        public_key=signer.public_key_hex,
        key_id=signer.key_id,
        generated=created,
    )

    scope = PolicyScope.of(settings.tenant_id, settings.workspace_id)
    try:
        source = policy_source(settings)
    except PolicyFileError as exc:
        store.close()
        raise StartupError(str(exc)) from exc
    snapshots = SnapshotStore()
    try:
        epochs = InstalledEpochs(settings.data_dir / EPOCHS_FILE)
    except (OSError, ValueError) as exc:
        store.close()
        raise StartupError(f"policy epochs: {exc}") from exc
    reconciler = Reconciler(
        source,
        snapshots,
        ReconcileSettings(
            signature_required=settings.policy.signature_required,
            trust_public_key=settings.policy.trust_public_key,
            on_invalid_update=settings.policy.on_invalid_update,
            last_known_good_max_age_s=settings.policy.last_known_good_max_age_s,
        ),
        on_status=getattr(source, "report", None),
        epochs=epochs,
    )
    status = _initial_reconcile(reconciler, scope, settings.policy.initial_reconcile_timeout_s)
    if status["reconcile_status"] not in ("ok", "no_change"):
        store.close()
        raise StartupError(
            f"reconcile initial policy snapshot: {status['reconcile_status']}: {status['reason']}"
        )
    snapshot = snapshots.get(scope)
    actions = len(snapshot.policy.rules) if snapshot and snapshot.policy else 0
    log(
        f"[helm] policy: source={settings.policy.source_kind} reconciled snapshot "
        f"hash={status['policy_hash']} epoch={status['policy_epoch']} actions={actions}"
    )
    metrics = None  # off: no registry, no labels, and prometheus_client (0.03 s) never loaded
    if settings.metrics_enabled:
        from helm_runbook.runtime.metrics import Metrics

        metrics = Metrics()
    if metrics is not None:
        metrics.chain_length.set(store.count())
        metrics.watch_policy(lambda: reconciler.last_status)
    kernel = Kernel(scope=scope, snapshots=snapshots, store=store, signer=signer, metrics=metrics)
    limits = settings.limits
    limiter = RateLimiter(limits) if limits.global_rps > 0 or limits.actor_rps > 0 else None
    gate = ConcurrencyGate(limits.concurrency_max) if limits.concurrency_max > 0 else None
    anonymous = limits.anonymous_receipts()
    return Runtime(
        settings, scope, kernel, store, signer, ev_signer, reconciler, metrics, limiter, gate,
        body_budget=BodyBudget(limits.body_budget_bytes),
        anonymous_receipts=RateLimiter(anonymous)
        if anonymous.global_rps > 0 or anonymous.actor_rps > 0
        else None,
    )  # fmt: skip


def _initial_reconcile(
    reconciler: Reconciler, scope: PolicyScope, timeout_s: float
) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(reconciler.reconcile(scope))

    worker = threading.Thread(target=run, name="initial-reconcile", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise StartupError(
            f"reconcile initial policy snapshot: timed out after {timeout_s:g}s "
            "(HELM_POLICY_INITIAL_RECONCILE_TIMEOUT)"
        )
    return result


def _import_deferred() -> None:
    """Run once the pod is ready, in a worker thread, so readiness never waits for them and the
    first policy with an expression (cel, without its CLI: compiler.load_cel) or the proxy's
    first upstream call (httpx, without its CLI: helm_runbook/__init__.py) finds them loaded."""
    load_cel()
    importlib.import_module("httpx")


class _Server(Server):
    """A uvicorn server that leaves signal handling to ``serve`` (several servers share a loop)
    and stops as soon as it is asked and drained: uvicorn's own loop notices ``should_exit`` on a
    0.1 s tick, and its shutdown sleeps 0.1 s, then polls in 0.1 s steps while connections drain."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.exit_requested = asyncio.Event()

    def request_exit(self) -> None:
        self.should_exit = True
        self.exit_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        """uvicorn's tick (the Date header, once a second), woken at once by ``request_exit``."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_requested.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown: no new connections, idle ones closed, every in-flight
        request (and so every receipt it appends) finished, within the graceful timeout."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            await asyncio.wait_for(self._drained(), timeout=self.config.timeout_graceful_shutdown)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _drained(self) -> None:
        state = self.server_state
        while (state.connections or state.tasks) and not self.force_exit:
            await asyncio.sleep(0.005)


def _uvicorn(app: Any, limits: LimitSettings) -> _Server:
    protocol = bounded_protocol(
        max_header_bytes=MAX_HEADER_BYTES, header_timeout_s=limits.header_timeout_s
    )
    # ws="none": the contract has no WebSocket route, and uvicorn's "auto" imports the websockets
    # library (about 0.03 s of every start) to refuse upgrades the router would refuse anyway.
    config = Config(app, http=protocol, ws="none", log_config=None, access_log=False,
                            lifespan="off", server_header=False)  # fmt: skip
    return _Server(config)


async def _poll(runtime: Runtime, interval_s: float) -> None:
    """Level-based polling: lost wake hints are recovered within one interval."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            status = await asyncio.to_thread(runtime.reconciler.reconcile, runtime.scope)
        except Exception as exc:  # the reconciler reports its own failures; this is the backstop
            log("[helm] policy poll failed", level="ERROR", error=str(exc)[:300])
            continue
        if status["reconcile_status"] not in ("no_change",):
            log_reconcile(status, trigger="poll")


class _ServerThread(threading.Thread):
    """A uvicorn server on an event loop of its own, in a thread of its own: the health port's
    probes never queue behind body parsing, CEL or receipt commits on the API port's loop."""

    def __init__(self, server: _Server, sock: socket.socket, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.server, self.sock = server, sock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failed: BaseException | None = None

    def run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                self.loop = runner.get_loop()
                runner.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # reported by serve_forever, which then stops
            self.failed = exc

    def stop(self) -> None:
        loop = self.loop
        self.server.should_exit = True
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(self.server.request_exit)


async def serve_forever(
    runtime: Runtime, listeners: Listeners, *, on_ready: Callable[[], None] | None = None
) -> None:
    """Serve both ports until SIGTERM/SIGINT, then drain and close the store. The API (and a
    separate metrics port) run on this loop; the health port on a thread of its own."""
    on_health_port = (
        runtime.metrics if runtime.settings.metrics_enabled and listeners.metrics is None else None
    )
    limits = runtime.settings.limits
    servers = [_uvicorn(create_app(runtime), limits)]
    sockets = [listeners.api]
    if listeners.metrics is not None and runtime.metrics is not None:
        servers.append(_uvicorn(create_metrics_app(runtime.metrics), limits))
        sockets.append(listeners.metrics)
    health = _ServerThread(
        _uvicorn(create_health_app(on_health_port, runtime.store.health), limits),
        listeners.health,
        "health-port",
    )
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.request_exit()
        health.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
    health.start()
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    poller = asyncio.create_task(_poll(runtime, runtime.settings.policy.poll_interval_s))
    while not (all(s.started for s in servers) and health.server.started):
        if any(t.done() for t in tasks) or not health.is_alive():
            break
        await asyncio.sleep(0.01)
    if all(s.started for s in servers) and health.server.started:
        log(
            "server ready",
            addr=runtime.settings.addr,
            port=listeners.api.getsockname()[1],
            health_port=listeners.health.getsockname()[1],
        )
        if on_ready:
            on_ready()
    else:
        if health.failed is not None:
            log("health port failed", level="ERROR", error=type(health.failed).__name__)
        stop()
    # A daemon thread: a pod stopped during these imports exits without waiting for them.
    threading.Thread(target=_import_deferred, name="deferred-imports", daemon=True).start()
    try:
        await asyncio.gather(*tasks)
    finally:
        poller.cancel()
        health.stop()
        await asyncio.to_thread(health.join, 10)
        await runtime.aclose()
        runtime.store.close()


def run(settings: Settings, *, json_ready: bool = False) -> int:
    """Start the runtime; returns the process exit code."""
    configure(settings.log_format)
    log(
        "HELM AI Kernel starting",
        version=KERNEL_VERSION,
        production=settings.production,
        data_dir=str(settings.data_dir),
        policy=str(settings.policy_path),
    )
    try:
        api = _bind(settings.addr, settings.port, "api")
        health = _bind(settings.addr, settings.health_port, "health")
        metrics = None
        if settings.metrics_enabled and settings.metrics_port != settings.health_port:
            metrics = _bind(settings.addr, settings.metrics_port, "metrics")
        runtime = build_runtime(settings)
    except StartupError as exc:
        log("start server failed", level="ERROR", error=str(exc))
        print(f"start server: {exc}", file=sys.stderr, flush=True)
        return 1

    def ready() -> None:
        if json_ready:
            record = {
                "name": "helm-edge-local",
                "addr": settings.addr,
                "port": api.getsockname()[1],
                "health_port": health.getsockname()[1],
                "ready": True,
                "policy": str(settings.policy_path),
            }
            print(json.dumps(record), flush=True)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve_forever(runtime, Listeners(api, health, metrics), on_ready=ready))
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it), else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
