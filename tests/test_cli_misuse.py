"""Misuse of ``helm-runbook``, as a new user types it: every case is refused before anything acts,
with its exit status, one ``error:`` line naming what is wrong, one ``fix:`` line, and no
traceback. And the edges that are not misuse: a mistyped command gets "did you mean", servers
print the address they listen on, ``--help`` is plain text."""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from helm_runbook.cli import main

GOOD_KEY = "ab" * 32


def _gzip_of(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as out:
        out.write(data)
    return buffer.getvalue()


# args, environment, exit status, what the error line names, what the fix line says
CASES: list[tuple[list[str], dict[str, str], int, str, str]] = [
    (["smok"], {}, 2, "no command 'smok'", "did you mean: helm-runbook smoke?"),
    (["verify-reciepts", "x"], {}, 2, "no command 'verify-reciepts'", "helm-runbook verify-receipts"),
    (["policy", "keygn"], {}, 2, "no command 'keygn'", "did you mean: helm-runbook policy keygen?"),
    (["controlplane", "server", "p.toml"], {}, 2, "no command 'server'", "controlplane serve"),
    ([], {}, 2, "required: command", "helm-runbook --help"),
    (["stop", "--colour"], {}, 2, "unrecognized arguments: --colour", "helm-runbook --help"),
    (["run", "--targt", "prod", "04"], {}, 2, "unrecognized arguments: --targt", "did you mean --target?"),
    (["mock-upstream", "--port", "99999"], {}, 2, "'99999' is not a TCP port", "mock-upstream --help"),
    (["mock-upstream", "--port", "-1"], {}, 2, "'-1' is not a TCP port", "mock-upstream --help"),
    (["mock-upstream", "--port", "http"], {}, 2, "'http' is not a TCP port", "mock-upstream --help"),
    (["mock-upstream", "--latency-ms", "-5"], {}, 2, "-5 is below 0", "mock-upstream --help"),
    (["mock-upstream", "--latency-ms", "nan"], {}, 2, "nan is below 0", "mock-upstream --help"),
    (["mock-upstream", "--fail-every", "-1"], {}, 2, "-1 is below 0", "mock-upstream --help"),
    (["mock-upstream", "--host", "192.0.2.1", "--port", "0"], {}, 2, "cannot listen on 192.0.2.1:0", "--host"),
    (["controlplane", "serve", "p.toml", "--port", "65536"], {}, 2, "'65536' is not a TCP port", "serve --help"),
    (["lab", "--port", "0"], {}, 2, "0 is not a TCP port", "lab --help"),
    (["smoke", "--url", "localhost:8080"], {"HELM_RUNBOOK_ADMIN_API_KEY": "k"}, 2,
     "'localhost:8080' is not an http(s) URL", "smoke --help"),
    (["smoke", "--url", "http://127.0.0.1:1", "--health-url", "127.0.0.1:8081"], {}, 2,
     "'127.0.0.1:8081' is not an http(s) URL", "smoke --help"),
    (["smoke", "--url", "ftp://host/"], {}, 2, "not an http(s) URL", "smoke --help"),
    (["policy", "status", "localhost:8080"], {}, 2, "http://localhost:8080", "status --help"),
    (["run", "--cell-timeout", "-5"], {}, 2, "-5 is not above 0", "run --help"),
    (["run", "--cell-timeout", "0"], {}, 2, "0 is not above 0", "run --help"),
    (["run", "--cell-timeout", "ten"], {}, 2, "'ten' is not a whole number", "run --help"),
    (["run", "77"], {}, 2, "no runbook matches 77", "the runbooks are 01 (01-chart-lint)"),
    (["run", "smoek"], {}, 2, "no runbook matches smoek", "did you mean 04 (04-smoke-checks)?"),
    (["run", "04", "--target", "prod/ns/extra"], {}, 2, "namespace is 'ns/extra'", "run --help"),
    (["run", "04", "--target", "local/ns"], {}, 2, "target is 'local/ns'", "run --help"),
    (["run", "03", "-p", "upstream_port", "eighty"], {}, 2, "upstream_port is declared int", "-p upstream_port 0"),
    (["verify-evidence", "not-a-pack.txt", "--public-key", GOOD_KEY], {}, 2,
     "not-a-pack.txt is not a gzip tar", "evidence/export"),
    (["verify-evidence", "gzip-not-tar.gz", "--public-key", GOOD_KEY], {}, 2,
     "gzip-not-tar.gz is not a gzip tar", "evidence/export"),
    (["verify-evidence", "truncated.tar.gz", "--public-key", GOOD_KEY], {}, 2,
     "truncated.tar.gz is not a gzip tar", "evidence/export"),
    (["verify-evidence", "folder", "--public-key", GOOD_KEY], {}, 2, "cannot read folder", "evidence/export"),
    (["policy", "keygen", "--out", "taken.key"], {}, 2, "taken.key already exists", "never overwritten"),
    (["policy", "keygen", "--out", "not-a-pack.txt/sub/k.key"], {}, 2, "cannot create", "--out path"),
    (["stop", "--workdir"], {}, 2, "expected one argument", "stop --help"),
]  # fmt: skip


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-pack.txt").write_text("hello\n")
    (tmp_path / "gzip-not-tar.gz").write_bytes(_gzip_of(b"just text, not a tar archive\n" * 40))
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as archive:
        info = tarfile.TarInfo("00_INDEX.json")
        info.size = 4000
        archive.addfile(info, io.BytesIO(os.urandom(4000)))
    (tmp_path / "truncated.tar.gz").write_bytes(tar.getvalue()[:20])
    (tmp_path / "folder").mkdir()
    (tmp_path / "taken.key").write_text("x")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c[0]) or "(nothing)" for c in CASES])
def test_misuse_is_one_error_line_and_one_fix_line(
    case: tuple[list[str], dict[str, str], int, str, str],
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, env, status, named, fix = case
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(args)
    except SystemExit as exited:  # argparse's refusals end the process, as they do from a shell
        code = int(exited.code or 0)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ") and named in lines[0], lines[0]
    assert lines[1].startswith("fix: ") and fix in lines[1], lines[1]
    assert code == status, (code, err)
    assert not list(files.glob("*.sig")) and not (files / "build").exists()  # nothing acted


def test_runbooks_are_chosen_with_or_without_the_leading_zero() -> None:
    from helm_runbook import runner

    for wanted in ("4", "04", "04-smoke", "smoke-checks"):
        plan = runner.plan_run(runner.RunRequest((wanted,)))
        assert [p.notebook.stem for p in plan.runbooks] == ["04-smoke-checks"], wanted
    plan = runner.plan_run(runner.RunRequest(("9", "2")))
    assert [p.notebook.stem for p in plan.runbooks] == [
        "02-secret-setup",
        "09-observability-ingress",
    ]


def test_keygen_creates_missing_parent_folders_owner_only(files: Path) -> None:
    assert main(["policy", "keygen", "--out", "keys/team/policy.key", "-q"]) == 0
    assert (files / "keys" / "team").stat().st_mode & 0o777 == 0o700
    assert (files / "keys" / "team" / "policy.key").stat().st_mode & 0o777 == 0o600


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["run", "--help"], ["stop", "--help"], ["policy", "keygen", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert "``" not in out, out


@pytest.mark.parametrize(
    ("args", "path"),
    [(["mock-upstream"], "/v1/models"), (["controlplane", "serve", "POLICY"], "/healthz")],
)
def test_servers_print_the_address_they_listen_on(
    args: list[str], path: str, tmp_path: Path
) -> None:
    if "POLICY" in args:
        from helm_runbook.steps.policy import _files

        for name, text in _files([{"action": "LLM_INFERENCE"}]).items():
            (tmp_path / name).write_text(text)
        (tmp_path / "k").write_text("ab" * 32)
        (tmp_path / "k").chmod(0o600)
        (tmp_path / "token").write_text("t" * 40)
        (tmp_path / "token").chmod(0o600)
        args = [*args[:-1], str(tmp_path / "serve-policy.toml"), "--key-file", str(tmp_path / "k"),
                "--token-file", str(tmp_path / "token")]  # fmt: skip
    with subprocess.Popen([sys.executable, "-m", "helm_runbook.cli", *args, "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 30
            lines: list[str] = []
            while time.monotonic() < deadline and not any("listening on" in x for x in lines):
                lines.append(process.stdout.readline())
                assert process.poll() is None or lines[-1], "exited before listening"
            [address] = re.findall(r"listening on (http://127\.0\.0\.1:\d+)", "".join(lines))
            assert not address.endswith(":0")
            assert httpx.get(address + path, timeout=10).status_code < 500
        finally:
            process.terminate()
            process.wait(10)
