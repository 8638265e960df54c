"""kmock's Kubernetes API emulator on 127.0.0.1, in a background thread, for the sync client."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kmock
import yaml

if TYPE_CHECKING:
    from helm_runbook.targets.kube import KubeTarget


class BackgroundKmock:
    """``with BackgroundKmock() as km: client.Configuration(host=km.url)``."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.url = ""
        self.emulator: Any = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
                with warnings.catch_warnings():
                    warnings.simplefilter(
                        "ignore", DeprecationWarning
                    )  # importlib.resources.read_binary
                    emulator.resources.load_bundled()
                self.emulator, self.url = emulator, f"http://{server.host}:{server.port}"
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # surfaced in __enter__
            self.error = exc
            self._ready.set()

    def __enter__(self) -> BackgroundKmock:
        self._thread.start()
        self._ready.wait(10)
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


def write_kubeconfig(
    url: str, path: Path, *, context: str = "emulated", namespace: str = "ops"
) -> Path:
    """A kubeconfig whose one context reaches the emulator at ``url`` (a token user, as kmock
    accepts any): for code that reads ``KUBECONFIG`` (the Helm SDK, the notebooks' kernels)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "emu", "cluster": {"server": url}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": "emu", "user": "me", "namespace": namespace}}],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def emulated_target(emulator: BackgroundKmock, tmp_path: Path, prefix: str) -> Iterator[KubeTarget]:
    """A kube target on the emulator in a namespace of its own (named after the test)."""
    from kubernetes import client

    from helm_runbook.targets.kube import KubeTarget

    namespace = f"{prefix}-{tmp_path.name[-12:].strip('_').lower().replace('_', '-')}"
    with client.ApiClient(client.Configuration(host=emulator.url)) as api:
        yield KubeTarget("emulated", namespace=namespace, workdir=tmp_path, api=api)
