"""Every expected failure of ``helm-runbook`` is one ``error:`` line, one ``fix:`` line and the
documented exit status: never a traceback (unreachable URLs, missing files, bad keys)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helm_runbook.cli import EXIT_STATUS
from tests.conftest import free_port

GOOD_KEY = "ab" * 32


def _run(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "helm_runbook.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", **(env or {})})  # fmt: skip


def _cases(down: str) -> list[tuple[list[str], dict[str, str], int, str]]:
    admin = {"HELM_RUNBOOK_ADMIN_API_KEY": "k"}
    return [
        (["smoke", "--url", down], admin, 3, "cannot reach"),
        (["smoke", "--url", down], {}, 2, "admin API key"),
        (["verify-receipts", f"{down}/api/v1/receipts", "--public-key", GOOD_KEY], admin, 3, "cannot reach"),
        (["verify-receipts", f"{down}/elsewhere", "--public-key", GOOD_KEY], admin, 5, "not a receipts listing URL"),
        (["verify-receipts", "missing.json", "--public-key", GOOD_KEY], {}, 2, "cannot read missing.json"),
        (["verify-receipts", "missing.json", "--public-key-file", "nope.pub"], {}, 2, "cannot read the public key file"),
        (["verify-receipts", "missing.json", "--public-key", "nothex"], {}, 2, "not 64 hex"),
        (["verify-evidence", "missing.tar.gz", "--public-key", GOOD_KEY], {}, 2, "cannot read missing.tar.gz"),
        (["verify-evidence", "missing.tar.gz", "--public-key", "zz"], {}, 2, "not 64 hex"),
        (["policy", "verify", "serve-policy.toml", "--public-key", "nothex"], {}, 2, "not 64 hex"),
        (["policy", "status", down], {"HELM_RUNBOOK_SERVICE_API_KEY": "k"}, 3, "cannot reach"),
        (["policy", "status", down], {}, 2, "service API key"),
        (["policy", "sign", "serve-policy.toml", "--key-file", "nope.key"], {}, 2, "nope.key"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(len(_cases(""))))
def test_expected_failures_are_one_line_with_a_fix(case: int, tmp_path: Path) -> None:
    args, env, status, message = _cases(f"http://127.0.0.1:{free_port()}")[case]
    result = _run(args, tmp_path, env)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert len(lines) == 2 and lines[1].startswith("fix: "), result.stderr
    assert result.returncode == status, (result.returncode, result.stderr)


def test_help_documents_every_exit_status(tmp_path: Path) -> None:
    out = _run(["--help"], tmp_path).stdout
    for code, why in EXIT_STATUS.items():
        assert f"{code}  {why}" in out
    assert _run(["--version"], tmp_path).stdout.startswith("helm-runbook ")
