"""The mounted serve-policy bundle: ``serve-policy.toml`` plus its reference pack (docs/upstream-contract.md#policy-file, #policy-sources).

The TOML names the reference pack by a path relative to itself; the pack's bytes are bound into
the policy hash through a ``reference_pack:<abs path>@sha256:<hex>`` source ref, so changing
either file changes the policy hash.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_runbook.formats.canonical import sha256_ref


class PolicyFileError(Exception):
    """The policy file or its reference pack is missing or malformed; ``status`` says which stage."""

    def __init__(self, message: str, *, status: str = "compile_error") -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServePolicy:
    """The validated keys of ``serve-policy.toml``."""

    name: str
    profile: str
    reference_pack: str
    bind: str
    port: int
    receipts_store: str
    receipts_path: str


def parse_serve_policy(data: bytes, *, source: str) -> ServePolicy:
    """Validate the TOML keys upstream requires; one PolicyFileError lists every problem."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyFileError(f"{source}: not valid TOML: {exc}") from exc
    problems: list[str] = []

    def text(table: Any, key: str, where: str) -> str:
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}{key} is required and must be a non-blank string")
            return ""
        return value

    server, receipts = doc.get("server"), doc.get("receipts")
    if not isinstance(server, dict):
        problems.append("[server] table is required (bind, port)")
    if not isinstance(receipts, dict):
        problems.append("[receipts] table is required (store, path)")
    name = text(doc, "name", "")
    profile = text(doc, "profile", "")
    reference_pack = text(doc, "reference_pack", "")
    bind = text(server, "bind", "server.") if isinstance(server, dict) else ""
    port = server.get("port", 0) if isinstance(server, dict) else 0
    if isinstance(server, dict) and (
        not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535
    ):
        problems.append(f"server.port must be an integer in 1..65535, got {port!r}")
    store = path = ""
    if isinstance(receipts, dict):
        store = text(receipts, "store", "receipts.")
        path = text(receipts, "path", "receipts.")
        if store and store not in ("sqlite", "sqlite3", "postgres", "postgresql"):
            problems.append(f"receipts.store must be sqlite or postgres, got {store!r}")
    if problems:
        raise PolicyFileError(f"{source}: " + "; ".join(problems))
    return ServePolicy(name, profile, reference_pack, bind, port, store, path)


def reference_pack_path(policy_path: Path, reference: str) -> Path:
    """Resolve the pack relative to the policy file; it may not escape that directory.

    The check is lexical, and symlinks are deliberately not followed: a ConfigMap mount makes
    every key a symlink into a timestamped ``..data`` directory, and the path bound into the
    policy hash (and signed) must be the stable mount path, not that target.
    """
    if Path(reference).is_absolute():
        raise PolicyFileError(
            f"reference_pack {reference!r} must be relative to the policy file, not absolute"
        )
    base = Path(os.path.normpath(os.path.abspath(policy_path.parent)))
    resolved = Path(os.path.normpath(base / reference))
    if not resolved.is_relative_to(base) or resolved == base:
        raise PolicyFileError(f"reference_pack {reference!r} escapes the policy directory {base}")
    return resolved


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def composite_material(bundle: bytes, source_refs: list[str]) -> bytes:
    """What the composite policy hash (and a composite signature) covers (docs/upstream-contract.md#policy-sources)."""
    refs = sorted(ref for ref in source_refs if "@sha256:" in ref)
    return go_json({"bundle_hash": sha256_ref(bundle), "source_refs": refs})


def policy_hash(bundle: bytes, source_refs: list[str]) -> str:
    """``sha256:`` of the composite material when a ref is content-addressed, else of the bundle."""
    if any("@sha256:" in ref for ref in source_refs):
        return sha256_ref(composite_material(bundle, source_refs))
    return sha256_ref(bundle)


def pack_ref(pack_path: Path, pack_bytes: bytes) -> str:
    return f"reference_pack:{pack_path}{'@'}{sha256_ref(pack_bytes)}"


def epoch_ref(epoch: int) -> str:
    """The source ref that binds a control-plane head's ``epoch`` into the composite material its
    signature covers (the ``@sha256:`` part puts it there, as for the reference pack), so an old
    signed head cannot be served again under a new epoch (docs/upstream-contract.md#d18)."""
    return f"policy_epoch:{epoch}@{sha256_ref(str(epoch).encode())}"


def signing_material(
    policy_bytes: bytes, policy_path: Path, *, mount_dir: Path | None = None
) -> bytes:
    """What a mounted policy's ``.sig`` must sign, exactly as the runtime will compute it.

    The composite material names the reference pack by its absolute path **inside the pod**, so
    sign with ``mount_dir`` = the chart's ``helm.policy.source.mountedFile.mountPath``.
    """
    serve = parse_serve_policy(policy_bytes, source=str(policy_path))
    local_pack = reference_pack_path(policy_path, serve.reference_pack)
    try:
        pack_bytes = local_pack.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read reference pack {local_pack}: {exc.strerror}") from exc
    local_dir = Path(os.path.normpath(os.path.abspath(policy_path.parent)))
    pack_in_pod = (mount_dir or local_dir) / local_pack.relative_to(local_dir)
    return composite_material(policy_bytes, [pack_ref(pack_in_pod, pack_bytes)])
