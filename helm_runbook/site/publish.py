"""Publish a built site as one version among others on a ``gh-pages``-style branch: ``<version>/``
beside every version published before, ``versions.json`` (the list mkdocs-material's version
selector reads, in mike's format), aliases such as ``latest`` as copies of their version, and a
root page that sends readers to ``latest``.

Published means verified: a site carries ``build-info.json`` (``provenance``, written by the site
build), and only a site whose runbooks all passed, built from a commit with no uncommitted change,
is published. The branch is written with git's plumbing through a temporary index: the work tree,
the index and the checked-out branch of the repository are never touched, and the branch moves
only if nobody else moved it meanwhile.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_runbook.errors import InputError, RunbookError, StepFailed

BUILD_INFO = "build-info.json"
VERSIONS = "versions.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_RESERVED = {VERSIONS, BUILD_INFO, "index.html", ".nojekyll", "..", "."}
MAX_FILES = 20_000  # a site is ~300 files; a folder of another kind is refused, not walked
MAX_VERSIONS_BYTES = 1024 * 1024
_GIT_TIMEOUT_S = 120


def provenance(root: Path, run_report: dict[str, Any]) -> dict[str, Any]:
    """What a site was built from: the commit and whether the checkout had uncommitted changes
    (``None`` outside a git checkout), the chart and runtime versions, and each runbook's status."""
    commit, dirty = "", None
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=normal").strip())
    except (OSError, RunbookError):
        pass  # not a git checkout (a source archive): publishing refuses such a site
    run = run_report.get("run", {})
    statuses = {e["notebook"]: e["status"] for e in run_report.get("notebooks", [])}
    return {
        "commit": commit,
        "dirty": dirty,
        "chart_version": run.get("chart_version", ""),
        "runtime_version": run.get("runtime_version", ""),
        "target": run.get("target", ""),
        "finished": run.get("finished", ""),
        "runbooks": statuses,
        "passed": bool(statuses) and all(s == "passed" for s in statuses.values()),
    }


def write_provenance(site: Path, info: dict[str, Any]) -> None:
    """``build-info.json`` and a one-version ``versions.json`` in the built site: served alone
    (``python -m http.server -d build/site``), the version selector finds its own version."""
    (site / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
    version = info.get("chart_version") or "local"
    alone = [{"version": version, "title": version, "aliases": ["latest"]}]
    (site / VERSIONS).write_text(json.dumps(alone) + "\n")


@dataclass(frozen=True)
class Published:
    """Where a site landed: the branch's new commit and the versions it now serves."""

    branch: str
    commit: str
    version: str
    aliases: tuple[str, ...]
    source_commit: str
    versions: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        listed = ", ".join(
            v["version"] + (f" ({', '.join(v['aliases'])})" if v["aliases"] else "")
            for v in self.versions
        )
        return (f"published {self.version} (built from {self.source_commit[:12]}) to {self.branch} "
                f"at {self.commit[:12]}; versions: {listed}")  # fmt: skip


def _git(
    repo: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
    check: bool = True,
) -> str:  # fmt: skip
    """git's output; InputError when it fails, or "" with ``check=False`` (a lookup that may miss)."""
    try:
        # safe.directory: in a CI container the checkout's owner may differ from the user (git then
        # refuses to read it); the command line is a place git honours that setting from
        done = subprocess.run(["git", "-c", f"safe.directory={repo}", *args], cwd=repo, capture_output=True, text=True, input=stdin,
                              env=env, timeout=_GIT_TIMEOUT_S)  # fmt: skip
    except FileNotFoundError as exc:
        raise InputError("git is not installed", fix="install git (apt-get install git)") from exc
    if done.returncode != 0 and not check:
        return ""
    if done.returncode != 0:
        raise InputError(f"git {args[0]} failed in {repo}: {done.stderr.strip()[:300]}",
                         fix="point --repo at a git repository you can write to")  # fmt: skip
    return done.stdout


def _checked_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value) or value in _RESERVED:
        raise InputError(f"{what} {value!r} is not a usable folder name",
                         fix=f"use letters, digits, '.', '_', '+' or '-' (at most 64), e.g. 0.8.4 for the {what}")  # fmt: skip
    return value


def read_build_info(site: Path) -> dict[str, Any]:
    """The site's provenance, refused unless its runbooks all passed on a clean commit."""
    path = site / BUILD_INFO
    if not path.is_file():
        raise InputError(f"{site} has no {BUILD_INFO}: not a site the runner built",
                         fix="build the whole run and its site with helm-runbook run (no --no-docs), then publish build/site")  # fmt: skip
    try:
        info = json.loads(path.read_bytes()[:MAX_VERSIONS_BYTES])
        if not isinstance(info, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise InputError(
            f"{path} is unreadable ({exc})", fix="build the site again with helm-runbook run"
        ) from exc
    failed = sorted(n for n, s in (info.get("runbooks") or {}).items() if s != "passed")
    if not info.get("passed"):
        raise StepFailed("publish.verified", expected="a site whose runbooks all passed",
                         seen=f"runbooks not passed: {', '.join(failed) or 'none ran'}",
                         fix="mend what the failed step's fix line names and run helm-runbook run again; only a passing run is published")  # fmt: skip
    if not info.get("commit") or info.get("dirty") is None:
        raise StepFailed("publish.verified", expected="a site built in a git checkout", seen="no commit recorded",
                         fix="build from a git clone of the repository with helm-runbook run, then publish")  # fmt: skip
    if info["dirty"]:
        raise StepFailed("publish.verified", expected="a site built from a commit with nothing uncommitted",
                         seen=f"the checkout at {info['commit'][:12]} had uncommitted changes when the site was built",
                         fix="commit or stash the changes, build again with helm-runbook run, then publish")  # fmt: skip
    return info


def _site_files(site: Path) -> list[Path]:
    files: list[Path] = []
    for path in sorted(site.rglob("*")):
        if path.is_symlink():
            raise InputError(
                f"{path} is a symbolic link",
                fix="publish the folder helm-runbook run built, as it is",
            )
        if path.is_file():
            files.append(path)
            if len(files) > MAX_FILES:
                raise InputError(f"{site} holds more than {MAX_FILES} files: not a built site",
                                 fix="publish build/site")  # fmt: skip
    return files


def _version_key(entry: dict[str, Any]) -> tuple[int, tuple[int, ...], str]:
    """Newest first: releases by their numbers, then anything else (``dev``) by name."""
    name = str(entry["version"])
    numbers = tuple(int(n) for n in re.findall(r"\d+", name))
    return (1, numbers, name) if re.match(r"v?\d", name) else (0, (), name)


def _redirect_page(to: str) -> str:
    where = html.escape(to, quote=True)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Redirecting</title>\n"
            f"<meta http-equiv=\"refresh\" content=\"0; url={where}\"><link rel=\"canonical\" href=\"{where}\">\n"
            f"</head><body><p><a href=\"{where}\">Go to the documentation</a></p></body></html>\n")  # fmt: skip


def publish_site(
    site: Path, *, repo: Path, version: str = "", aliases: Sequence[str] = ("latest",), branch: str = "gh-pages",
    message: str = "",
) -> Published:  # fmt: skip
    """Add ``site`` to ``branch`` of ``repo`` as ``version`` (default: the chart version it
    documents) with ``aliases``; an alias moves from whichever version held it."""
    site = site.resolve()  # git runs in the repository: a relative site would be read from there
    info = read_build_info(site)
    version = _checked_name(version or str(info.get("chart_version") or ""), "version")
    aliases = tuple(dict.fromkeys(_checked_name(a, "alias") for a in aliases))
    if version in aliases:
        raise InputError(
            f"alias {version!r} is the version itself",
            fix="give the alias another name, e.g. latest",
        )
    _checked_name(branch, "branch")
    files = _site_files(site)
    ref = f"refs/heads/{branch}"
    repo = repo.resolve()
    _git(repo, "rev-parse", "--git-dir")
    parent = _git(repo, "rev-parse", "--verify", "-q", ref, check=False).strip()

    with tempfile.TemporaryDirectory(prefix="publish-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index"),
               "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "helm-runbook publish"),
               "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "helm-runbook@localhost"),
               "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "helm-runbook publish"),
               "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "helm-runbook@localhost")}  # fmt: skip
        versions: list[dict[str, Any]] = []
        kept: list[str] = []
        replaced = {version, *aliases}
        if parent:
            listed = _git(repo, "show", f"{parent}:{VERSIONS}", check=False)[:MAX_VERSIONS_BYTES]
            try:
                loaded = json.loads(listed or "[]")
                versions = [
                    v for v in loaded if isinstance(v, dict) and isinstance(v.get("version"), str)
                ]
            except ValueError:
                versions = []  # an unreadable list is rebuilt from this publish on
            # every other version's files stay; this version's folder and each alias's are replaced whole
            for line in _git(repo, "ls-tree", "-r", "-z", parent).split("\0"):
                if (
                    line
                    and (name := line.split("\t", 1)[1]).split("/")[0] not in replaced
                    and "/" in name
                ):
                    kept.append(line.replace(" blob ", " ", 1))
        for entry in versions:  # an alias leaves the version that held it
            entry["aliases"] = [a for a in entry.get("aliases", []) if a not in aliases]
        versions = [v for v in versions if v["version"] != version]
        versions.append({"version": version, "title": version, "aliases": list(aliases)})
        versions.sort(key=_version_key, reverse=True)

        blobs = _git(
            repo,
            "hash-object",
            "-w",
            "--stdin-paths",
            stdin="\n".join(str(f) for f in files) + "\n",
        )
        entries = kept
        for path, blob in zip(files, blobs.split(), strict=True):
            rel = path.relative_to(site).as_posix()
            if rel in (VERSIONS,):
                continue  # the site's own one-version list: the branch's list replaces it
            entries += [f"100644 {blob}\t{folder}/{rel}" for folder in (version, *aliases)]
        default = aliases[0] if aliases else versions[0]["version"]
        for name, text in ((VERSIONS, json.dumps(versions, indent=2) + "\n"), ("index.html", _redirect_page(f"{default}/")),
                           (".nojekyll", "")):  # fmt: skip
            blob = _git(repo, "hash-object", "-w", "--stdin", stdin=text).strip()
            entries.append(f"100644 {blob}\t{name}")
        _git(
            repo, "update-index", "--add", "--index-info", env=env, stdin="\n".join(entries) + "\n"
        )
        tree = _git(repo, "write-tree", env=env).strip()
        subject = message or f"Publish {version} built from {info['commit'][:12]}"
        commit = _git(
            repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", subject, env=env
        ).strip()
        # moves only from the commit read above: a concurrent publish makes this one fail, not vanish
        _git(repo, "update-ref", ref, commit, parent or "0" * 40)
    return Published(branch, commit, version, aliases, info["commit"], versions)
