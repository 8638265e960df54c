"""Names set once carry through the runbooks: 02 given a release and both Secret names (saved in
the run profile), then 03 and 04 given nothing, and ``diagnose`` for that release, on the local
target. (The same on a kube context, as far as the emulator goes: tests/targets/test_kube.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_runbook import runner
from helm_runbook.errors import TargetUnavailable
from helm_runbook.harness.record import read_records
from helm_runbook.targets.local import LocalTarget
from helm_runbook.tools.diagnose import diagnose

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
NAMES = {"release": "acme-gw", "signing_secret": "acme-signing", "auth_secret": "acme-auth"}


def _steps(executed: Path, step: str) -> list[dict[str, object]]:
    return [r["values"] for r in read_records(executed) if r["step"] == step and r["ok"]]


def test_names_given_to_02_carry_through_03_04_and_diagnose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "EXECUTED", tmp_path / "runbooks")
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "local-target")
    (tmp_path / "runbooks").mkdir()
    try:
        for name, extra in (
            ("02-secret-setup", NAMES),
            ("03-production-install", {}),
            ("04-smoke-checks", {}),
        ):
            entry = runner.execute(
                runner.NOTEBOOKS / f"{name}.ipynb", target="local", cell_timeout=120, extra=extra
            )
            assert entry["status"] == "passed", (name, entry["failure"])
        executed = tmp_path / "runbooks"
        [saved] = _steps(executed / "02-secret-setup.ipynb", "profile")
        assert saved["saved"] and saved["parameters"] == [
            "auth_secret",
            "release",
            "signing_secret",
            "target",
        ]
        [read] = _steps(executed / "04-smoke-checks.ipynb", "profile")
        assert (read["release"], read["auth_secret"], read["signing_secret"]) == (
            "acme-gw",
            "acme-auth",
            "acme-signing",
        )
        assert read["parameters"] == ["target"]  # the runner's target; the names came from the file
        smokes = _steps(executed / "04-smoke-checks.ipynb", "smoke")
        assert len(smokes) == 2 and all(s["proxy_verdict"] == "ALLOW" for s in smokes)
        target = LocalTarget.open(tmp_path / "local-target")
        assert target.release is not None and target.release.release == "acme-gw"
        assert set(target.secrets) >= {"acme-signing", "acme-auth"}
        assert not {"helm-signing", "helm-auth"} & set(target.secrets)
        env = target.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in env
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs == {"acme-signing", "acme-auth"}
        found = diagnose(target, release="acme-gw")
        assert found.problems == [] and found.finding("service-key").status == "ok"
        with pytest.raises(TargetUnavailable, match="no release helm-ai-kernel"):
            diagnose(target, release="helm-ai-kernel")
    finally:
        runner.stop_local_target(tmp_path / "local-target")
