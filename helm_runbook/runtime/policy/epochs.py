"""Policy epochs only move forward (docs/upstream-contract.md#d18): the installed epoch of each
scope, kept in ``<data-dir>/policy-epochs.json`` so a restart cannot be walked back either.

A control plane (or anyone answering for it) serving an older signed head would otherwise
re-install it: its signature still verifies. The reconciler refuses a head whose epoch is below
the installed one, or equal to it with other content; a legitimate rollback is published as a
new epoch carrying the old content. A control-plane head binds its epoch into what its signature
covers with the source ref ``epoch_ref(n)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from helm_runbook.formats.policy_bundle import epoch_ref

__all__ = ["EPOCHS_FILE", "InstalledEpochs", "epoch_ref"]

EPOCHS_FILE = "policy-epochs.json"
_MAX_FILE_BYTES = 1 << 20


class InstalledEpochs:
    """Per scope, the epoch and policy hash last installed; persisted atomically (0600) when a
    path is given, in memory only otherwise."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._epochs: dict[str, tuple[int, str]] = self._load() if path else {}

    def _load(self) -> dict[str, tuple[int, str]]:
        assert self.path is not None
        try:
            with self.path.open("rb") as f:
                data = f.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise OSError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            doc = json.loads(data)
            return {
                str(scope): (int(entry["epoch"]), str(entry["policy_hash"]))
                for scope, entry in doc["scopes"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Refusing to start is the safe reading: forgetting the floor would re-open replays.
            raise ValueError(
                f"{self.path} is malformed ({exc}); restore it or, to accept any epoch once, "
                "move it aside"
            ) from None

    def floor(self, scope_key: str) -> tuple[int, str] | None:
        return self._epochs.get(scope_key)

    def record(self, scope_key: str, epoch: int, policy_hash: str) -> None:
        with self._lock:
            if self._epochs.get(scope_key) == (epoch, policy_hash):
                return
            self._epochs[scope_key] = (epoch, policy_hash)
            if self.path is not None:
                self._write()

    def _write(self) -> None:
        assert self.path is not None
        doc = {"scopes": {k: {"epoch": e, "policy_hash": h} for k, (e, h) in self._epochs.items()}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
