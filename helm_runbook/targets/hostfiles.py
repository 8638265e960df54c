"""Owner-only files and directories on the host: what the local target keeps for a pod (Secret
and ConfigMap items, PVC directories, logs, pid files) is never wider than its owner, not even
for a moment."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    """``path`` and any missing parents created owner-only (0700), never wider first."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)  # narrowing one made earlier (or by a pod) never exposes anything
    return path


def private_file(path: Path) -> Path:
    """An empty owner-only (0600) file another process will write (a log, a pid file)."""
    write_file(path, b"", 0o600)
    return path


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with a file that is never wider than ``mode``.

    Created owner-only (at most ``mode``'s owner bits) and written, then set to exactly ``mode``
    (the umask cannot narrow it) and renamed into place. The temporary name starts with '..',
    which no ConfigMap or Secret key may, so it never clobbers an item."""
    tmp = path.with_name(f"..{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o700)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)
