"""The run profile: strict, bounded loading; parameters over the file; what is saved and shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helm_runbook.errors import InputError, TargetUnavailable
from helm_runbook.steps.profile import MAX_PROFILE_BYTES, RunProfile, load_profile, use_profile
from tests.conftest import free_port
from tests.kube_emulator import BackgroundKmock, write_kubeconfig


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_parameters_override_the_file_and_unset_ones_take_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "profile.yaml", {"release": "acme-gw", "auth_secret": "acme-auth"})
    run = use_profile(path, release="", auth_secret="other-auth", signing_secret="")
    assert (run.release, run.auth_secret, run.signing_secret) == (
        "acme-gw",
        "other-auth",
        "helm-signing",
    )
    rows = {row[0]: row[1:] for row in run.table().rows}
    assert rows["release"] == ["acme-gw", "profile profile.yaml"]
    assert rows["auth_secret"] == ["other-auth", "parameter"]
    assert rows["signing_secret"] == ["helm-signing", "profile profile.yaml"]
    assert load_profile(path).auth_secret == "acme-auth"  # without save, the file is unchanged


def test_save_writes_what_later_runbooks_read(
    tmp_path: Path, emulator: BackgroundKmock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sub" / "profile.yaml"
    kubeconfig = write_kubeconfig(emulator.url, tmp_path / "kubeconfig", context="prod")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    use_profile(
        path, save=True, release="acme-gw", target="prod/acme", upstream_models="gpt-a, gpt-b"
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    later = use_profile(path)
    assert (later.release, later.target, later.namespace) == ("acme-gw", "prod", "acme")
    assert later.target_spec == "prod/acme" and later.on_cluster
    assert later.upstream_models == ("gpt-a", "gpt-b")


@pytest.mark.parametrize("target", ["wrongctx", "down"])
def test_a_target_that_cannot_be_used_is_never_saved(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run 02 --target wrongctx`` fails at its profile step, and the profile keeps what the
    last successful step wrote (here: nothing yet, then local)."""
    path = tmp_path / "profile.yaml"
    kubeconfig = write_kubeconfig(
        f"http://127.0.0.1:{free_port()}", tmp_path / "kc", context="down"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(TargetUnavailable, match=f"kube context '{target}'"):
        use_profile(path, save=True, target=target, release="acme-gw")
    assert not path.exists()
    use_profile(path, save=True, release="acme-gw")
    with pytest.raises(TargetUnavailable):
        use_profile(path, save=True, target=target, release="other")
    assert (load_profile(path).target, load_profile(path).release) == ("local", "acme-gw")


def test_a_values_file_that_cannot_be_read_is_never_saved(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    with pytest.raises(InputError, match="cannot read"):
        use_profile(path, save=True, values_file=str(tmp_path / "missing.yaml"))
    assert not path.exists()


def test_without_a_file_the_defaults_are_the_runbooks_names(tmp_path: Path) -> None:
    run = use_profile(tmp_path / "absent.yaml")
    assert run == RunProfile()
    assert (run.release, run.signing_secret, run.auth_secret) == (
        "helm-ai-kernel",
        "helm-signing",
        "helm-auth",
    )
    assert not (tmp_path / "absent.yaml").exists()
    assert run.proxy_model == "mock-model" and not run.on_cluster


@pytest.mark.parametrize(
    ("content", "named", "fix"),
    [
        ({"relase": "x"}, "unknown setting 'relase'", "the settings are"),
        ({"release": 3}, "release is a int", "correct release"),
        ({"upstream_models": "gpt-4o"}, "upstream_models", "upstream_models"),
        ({"release": "Acme_GW"}, "release is 'Acme_GW'", "correct release"),
        ({"auth_secret": "acme auth"}, "auth_secret", "correct auth_secret"),
        ({"upstream_url": "api.example/v1"}, "upstream_url", "correct upstream_url"),
        (["release", "acme"], "a mapping of settings expected", "setting: value"),
    ],
)
def test_bad_profiles_are_refused_naming_the_key_and_the_fix(
    tmp_path: Path, content: object, named: str, fix: str
) -> None:
    path = _write(tmp_path / "profile.yaml", content)
    with pytest.raises(InputError) as refused:
        use_profile(path)
    assert named in refused.value.message
    assert fix in refused.value.fix


def test_unreadable_oversized_and_malformed_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read it"):
        load_profile(tmp_path)  # a directory
    big = tmp_path / "big.yaml"
    big.write_text("release: a\n" + "#" * MAX_PROFILE_BYTES)
    with pytest.raises(InputError, match="larger than"):
        load_profile(big)
    bad = tmp_path / "bad.yaml"
    bad.write_text("release: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_profile(bad)
    if os.geteuid() != 0:  # root reads any file
        locked = _write(tmp_path / "locked.yaml", {"release": "a"})
        locked.chmod(0)
        with pytest.raises(InputError, match="cannot read it"):
            load_profile(locked)


def test_a_relative_profile_resolves_against_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helm_runbook.targets import CHECKOUT

    monkeypatch.chdir(tmp_path)
    name = f"build/test-profile-{os.getpid()}.yaml"
    try:
        use_profile(name, save=True, release="acme-gw")
        assert (CHECKOUT / name).exists() and not (tmp_path / name).exists()
    finally:
        (CHECKOUT / name).unlink(missing_ok=True)


def test_the_values_file_is_read_bounded_and_strict(tmp_path: Path) -> None:
    values = _write(tmp_path / "values.yaml", {"resources": {"limits": {"memory": "1Gi"}}})
    assert RunProfile(values_file=str(values)).extra_values() == {
        "resources": {"limits": {"memory": "1Gi"}}
    }
    listed = _write(tmp_path / "list.yaml", ["a"])
    with pytest.raises(InputError, match="a YAML mapping of chart values"):
        RunProfile(values_file=str(listed)).extra_values()
    with pytest.raises(InputError, match="cannot read it"):
        RunProfile(values_file=str(tmp_path / "missing.yaml")).extra_values()
