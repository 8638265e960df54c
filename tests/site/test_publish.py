"""Publishing keeps every version side by side on a gh-pages-style branch, moves aliases, and
refuses a site that a failed run or an uncommitted checkout produced."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helm_runbook.cli import main
from helm_runbook.errors import InputError, StepFailed
from helm_runbook.site.publish import BUILD_INFO, provenance, publish_site, write_provenance


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def _repo(tmp_path: Path, *, bare: bool = False) -> Path:
    repo = tmp_path / ("pages.git" if bare else "pages")
    repo.mkdir()
    _git(repo, "init", "-q", *(["--bare"] if bare else []), "-b", "main")
    if not bare:
        (repo / "README.md").write_text("work tree\n")
        _git(repo, "add", "README.md")
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "init")
    return repo


def _site(tmp_path: Path, name: str, chart: str, **info: Any) -> Path:
    site = tmp_path / name
    (site / "runbooks" / "04-smoke-checks").mkdir(parents=True)
    (site / "index.html").write_text(f"<h1>chart {chart}</h1>")
    (site / "runbooks" / "04-smoke-checks" / "index.html").write_text(f"<p>smoke {chart}</p>")
    report = {"run": {"chart_version": chart, "target": "local"},
              "notebooks": [{"notebook": "04-smoke-checks", "status": "passed"}]}  # fmt: skip
    facts = provenance(Path(__file__).resolve().parents[2], report) | {
        "commit": "c0ffee" * 6 + "ab",
        "dirty": False,
    }
    write_provenance(site, facts | info)
    return site


def _tree(repo: Path, ref: str = "gh-pages") -> dict[str, str]:
    return {
        path: _git(repo, "show", f"{ref}:{path}")
        for path in _git(repo, "ls-tree", "-r", "--name-only", ref).split()
    }


def test_two_versions_side_by_side_with_the_alias_on_the_newest(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    head = _git(repo, "rev-parse", "HEAD")
    first = publish_site(_site(tmp_path, "a", "0.1.0"), repo=repo)
    second = publish_site(_site(tmp_path, "b", "0.2.0"), repo=repo)
    files = _tree(repo)
    assert files["0.1.0/index.html"] == "<h1>chart 0.1.0</h1>"
    assert files["0.2.0/runbooks/04-smoke-checks/index.html"] == "<p>smoke 0.2.0</p>"
    assert files["latest/index.html"] == "<h1>chart 0.2.0</h1>"  # the alias moved with the newest
    assert "latest/" in files["index.html"] and ".nojekyll" in files
    assert json.loads(files["versions.json"]) == [
        {"version": "0.2.0", "title": "0.2.0", "aliases": ["latest"]},
        {"version": "0.1.0", "title": "0.1.0", "aliases": []},
    ]
    assert json.loads(files["0.1.0/build-info.json"])["chart_version"] == "0.1.0"
    assert "0.1.0/versions.json" not in files  # the site's own one-version list is not published
    # one commit per publish, the first on a new branch; the work tree and its branch untouched
    assert _git(repo, "rev-list", "--count", "gh-pages").strip() == "2"
    assert second.commit == _git(repo, "rev-parse", "gh-pages").strip() != first.commit
    assert _git(repo, "rev-parse", "HEAD") == head and _git(repo, "status", "--porcelain") == ""
    assert "0.2.0 (latest), 0.1.0" in str(second)


def test_republishing_a_version_replaces_it_and_keeps_the_others(tmp_path: Path) -> None:
    repo = _repo(tmp_path, bare=True)  # a bare repository works too: no work tree is involved
    publish_site(_site(tmp_path, "a", "0.1.0"), repo=repo)
    publish_site(_site(tmp_path, "b", "0.2.0"), repo=repo, aliases=())
    again = _site(tmp_path, "c", "0.1.0")
    (again / "runbooks" / "04-smoke-checks" / "index.html").unlink()
    publish_site(again, repo=repo, version="0.1.0")
    files = _tree(repo)
    assert "0.1.0/runbooks/04-smoke-checks/index.html" not in files  # replaced whole, nothing stale
    assert "0.2.0/runbooks/04-smoke-checks/index.html" in files
    assert [(v["version"], v["aliases"]) for v in json.loads(files["versions.json"])] == [
        ("0.2.0", []), ("0.1.0", ["latest"])]  # fmt: skip


@pytest.mark.parametrize(("info", "said"), [
    ({"passed": False, "runbooks": {"04-smoke-checks": "failed"}}, "runbooks not passed: 04-smoke-checks"),
    ({"dirty": True}, "had uncommitted changes"),
    ({"commit": "", "dirty": None}, "no commit recorded"),
])  # fmt: skip
def test_a_site_that_is_not_verified_is_refused(
    tmp_path: Path, info: dict[str, Any], said: str
) -> None:
    repo = _repo(tmp_path)
    with pytest.raises(StepFailed, match=said) as refused:
        publish_site(_site(tmp_path, "a", "0.1.0", **info), repo=repo)
    assert refused.value.fix
    assert "gh-pages" not in _git(repo, "branch", "--list")


@pytest.mark.parametrize("name", ["../up", "versions.json", "a/b", "", "x" * 65, "-rf"])
def test_version_and_alias_names_are_folder_names(tmp_path: Path, name: str) -> None:
    site = _site(tmp_path, "a", "0.1.0")
    with pytest.raises(InputError, match="not a usable folder name"):
        publish_site(site, repo=_repo(tmp_path), version=name or "--", aliases=())
    with pytest.raises(InputError, match="not a usable folder name"):
        publish_site(site, repo=tmp_path / "pages", version="0.1.0", aliases=(name,))


def test_the_cli_says_where_it_published_and_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo(tmp_path)
    site = _site(tmp_path, "a", "0.1.0")
    assert main(["publish", "--site", str(site), "--repo", str(repo), "--no-alias"]) == 0
    assert capsys.readouterr().out.startswith(
        "published 0.1.0 (built from c0ffeec0ffee) to gh-pages at "
    )
    (site / BUILD_INFO).unlink()
    assert main(["publish", "--site", str(site), "--repo", str(repo)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and "not a site the runner built" in err[0]
    assert err[1].startswith("fix: ") and len(err) == 2


def test_a_relative_site_path_is_read_from_where_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make publish`` passes ``build/site``: git runs in the repository, the site is read here."""
    repo = _repo(tmp_path, bare=True)
    _site(tmp_path, "a", "0.1.0")
    monkeypatch.chdir(tmp_path)
    publish_site(Path("a"), repo=repo)
    assert _tree(repo)["0.1.0/index.html"] == "<h1>chart 0.1.0</h1>"


def test_provenance_records_the_checkout() -> None:
    root = Path(__file__).resolve().parents[2]
    facts = provenance(root, {"run": {"chart_version": "0.8.4"}, "notebooks": [
        {"notebook": "01-chart-lint", "status": "passed"}, {"notebook": "02-secret-setup", "status": "failed"}]})  # fmt: skip
    assert facts["commit"] == _git(root, "rev-parse", "HEAD").strip()
    assert facts["dirty"] == bool(_git(root, "status", "--porcelain").strip())
    assert facts["passed"] is False and facts["chart_version"] == "0.8.4"
    assert provenance(root, {"run": {}, "notebooks": []})["passed"] is False
