"""The local target keeps a release inside its workdir and grants the pod what its spec says.

Each escape a values file (or an edited render) could try is refused with the field and the rule,
before anything touches the host; a probe pod (the rendered Deployment with a small Python probe
as its command) reports what it can see and write, compared with what the spec grants.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helm_runbook.chart import CHART_DIR, render
from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.errors import StepFailed
from helm_runbook.targets.local import LocalTarget
from helm_runbook.targets.pod import egress_ports

pytestmark = pytest.mark.slow
AUTH = {"helm": {"auth": {"existingSecret": "helm-auth"}}}
HEADERS = {
    "Authorization": "Bearer adm",
    "X-Helm-Tenant-ID": "default",
    "X-Helm-Principal-ID": "system-admin",
}
PROBE = r"""
import json, os, socket, sys
def writable(directory):
    path = os.path.join(directory, ".probe-%d" % os.getpid())
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return False
    os.unlink(path)
    return True
def mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None
def reaches(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True
umask = os.umask(0); os.umask(umask)
paths = ["/", "/etc", "/usr", "/data", "/tmp", "/etc/helm-ai-kernel/policy", "/var/run/helm-signing-key"]
print(json.dumps({
    "writable": {p: writable(p) for p in paths},
    "visible": {p: os.path.exists(p) for p in sys.argv[3:]},
    "reaches": {"undeclared": reaches(int(sys.argv[1])), "declared": reaches(int(sys.argv[2]))},
    "modes": {p: mode(p) for p in ["/var/run/helm-signing-key/root.key",
                                    "/etc/helm-ai-kernel/policy/serve-policy.toml"]},
    "uid": os.getuid(), "gid": os.getgid(), "umask": umask, "env": sorted(os.environ),
    "pwd": os.environ.get("PWD"),
}))
"""


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalTarget]:
    local = LocalTarget(tmp_path / "target")
    local.create_secret("helm-auth", {"HELM_ADMIN_API_KEY": "adm", "HELM_SERVICE_API_KEY": "svc"})
    yield local
    local.close()


def _pod_spec(release: RenderedRelease) -> dict[str, Any]:
    spec: dict[str, Any] = release.get("Deployment")["spec"]["template"]["spec"]
    return spec


def _refused(target: LocalTarget, edit: Callable[[RenderedRelease], None]) -> StepFailed:
    """Render the default release, apply ``edit`` to it, and return the install's refusal."""
    release = render(CHART_DIR, AUTH)
    edit(release)
    with pytest.raises(StepFailed) as refused:
        target.apply(release)
        target.start_pod()
    assert target.pod is None
    return refused.value


def test_a_configmap_key_cannot_write_outside_the_volume(
    target: LocalTarget, tmp_path: Path
) -> None:
    """helm.policy.referencePackFileName became a ConfigMap key, and that key a host path."""
    victim = tmp_path / "victim.txt"
    escape = "../" * 12 + str(victim).lstrip("/")

    def edit(release: RenderedRelease) -> None:
        data = release.of_kind("ConfigMap")[0]["data"]
        data[escape] = data.pop("reference-pack.json")

    failed = _refused(target, edit)
    assert "ConfigMap" in failed.expected and "[-._a-zA-Z0-9]+" in failed.expected
    assert escape in failed.seen and "values" in str(failed)
    assert not victim.exists()
    assert "helm-ai-kernel-policy" not in target.config_maps, "nothing of the release is stored"


def test_an_existing_claim_cannot_name_a_host_directory(
    target: LocalTarget, tmp_path: Path
) -> None:
    """persistence.existingClaim became claimName, and claimName a bind-mounted host directory."""
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()

    def edit(release: RenderedRelease) -> None:
        volume = next(v for v in _pod_spec(release)["volumes"] if v["name"] == "data")
        volume["persistentVolumeClaim"]["claimName"] = str(host_dir)

    failed = _refused(target, edit)
    assert "claimName" in failed.expected and "DNS-1123 subdomain" in failed.expected
    assert list(host_dir.iterdir()) == []


def test_a_claim_directory_swapped_for_a_symlink_is_refused(
    target: LocalTarget, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (target.workdir / "pvc").mkdir(parents=True)
    (target.workdir / "pvc" / "helm-ai-kernel-data").symlink_to(host_dir)
    failed = _refused(target, lambda release: None)
    assert "stays inside" in failed.expected and str(host_dir) in failed.seen
    assert list(host_dir.iterdir()) == []


def _set_item(field: str, value: object) -> Callable[[RenderedRelease], None]:
    def edit(release: RenderedRelease) -> None:
        volume = next(v for v in _pod_spec(release)["volumes"] if v["name"] == "signing-key")
        if field == "defaultMode":
            volume["secret"]["defaultMode"] = value
        else:
            volume["secret"]["items"][0][field] = value

    return edit


def _set_container(field: str, value: object) -> Callable[[RenderedRelease], None]:
    def edit(release: RenderedRelease) -> None:
        container = _pod_spec(release)["containers"][0]
        if field == "mountPath":
            container["volumeMounts"][0]["mountPath"] = value
        else:
            container.setdefault("securityContext", {})[field] = value

    return edit


def _set_volume_name(value: str) -> Callable[[RenderedRelease], None]:
    def edit(release: RenderedRelease) -> None:
        spec = _pod_spec(release)
        next(v for v in spec["volumes"] if v["name"] == "tmp")["name"] = value
        next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "tmp")["name"] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "field", "rule"),
    [
        (_set_item("path", "../../root.key"), "items[0].path", "relative path without '..'"),
        (_set_item("path", "a/../../x"), "items[0].path", "relative path without '..'"),
        (_set_item("key", "../signing-key"), "items[0].key", "[-._a-zA-Z0-9]+"),
        (_set_item("mode", 0o4755), "items[0].mode", "0 to 0777"),
        (_set_item("defaultMode", -1), "secret.defaultMode", "0 to 0777"),
        (_set_container("mountPath", "data"), "mountPath", "an absolute path"),
        (_set_container("mountPath", "/data/../etc"), "mountPath", "an absolute path"),
        (_set_volume_name("../tmp"), "volumes[3].name", "DNS-1123 label"),
        (_set_container("runAsUser", -5), "securityContext.runAsUser", "integer id"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_pod_spec_field_that_would_reach_the_host_is_refused(
    target: LocalTarget, edit: Callable[[RenderedRelease], None], field: str, rule: str
) -> None:
    failed = _refused(target, edit)
    assert failed.step == "install.validate"
    assert field in failed.expected and rule in failed.expected, failed.expected


def test_an_absolute_item_path_is_refused(target: LocalTarget, tmp_path: Path) -> None:
    victim = tmp_path / "victim.key"
    failed = _refused(target, _set_item("path", str(victim)))
    assert "items[0].path" in failed.expected and "relative path" in failed.expected
    assert not victim.exists()


def test_secret_keys_and_names_are_checked_on_create(target: LocalTarget) -> None:
    with pytest.raises(StepFailed, match=r"Secret helm-x data key"):
        target.create_secret("helm-x", {"../../x": "v"})
    with pytest.raises(StepFailed, match="DNS-1123 subdomain"):
        target.create_secret("../helm-x", {"k": "v"})
    with pytest.raises(StepFailed, match=r"ConfigMap .*data key"):
        target.apply_config_map("helm-cm", {"..": "v"})


def test_run_as_non_root_with_uid_zero_is_refused(target: LocalTarget) -> None:
    failed = _refused(target, _set_container("runAsUser", 0))
    assert "CreateContainerConfigError" in failed.seen


def _probe(target: LocalTarget, values: dict[str, Any], read_only_root: bool) -> dict[str, Any]:
    """Run the release's pod with the probe as its container command; its one JSON line."""
    release = render(CHART_DIR, values)
    container = _pod_spec(release)["containers"][0]
    project = Path(__file__).resolve().parents[2]  # bound: its package and venv, nothing else
    hidden = [str(target.workdir.resolve()), str(project / "README.md"), str(project / ".git"),
              "/etc/shadow", "/home", "/var/lib"]  # fmt: skip
    container["args"] = []
    # The Secret the init container reads, mounted without readOnly: still read-only (kubelet).
    container["volumeMounts"].append(
        {"name": "signing-key", "mountPath": "/var/run/helm-signing-key"}
    )
    container["securityContext"]["readOnlyRootFilesystem"] = read_only_root
    with socket.socket() as undeclared, socket.socket() as declared:  # on the host's loopback
        for service in (undeclared, declared):
            service.bind(("127.0.0.1", 0))
            service.listen()
        ports = [str(service.getsockname()[1]) for service in (undeclared, declared)]
        container["env"].append(
            {"name": "PROBE_UPSTREAM_URL", "value": f"http://127.0.0.1:{ports[1]}/v1"}
        )
        container["command"] = [sys.executable, "-I", "-c", PROBE, *ports, *hidden]
        target.apply(release)
        pod = target.start_pod()
        deadline = time.monotonic() + 30
        while pod.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert pod.exit_code() is not None, "the probe must exit"
    report: dict[str, Any] = json.loads(target.logs().strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("read_only_root", [True, False])
def test_the_probe_pod_sees_and_writes_only_what_its_spec_grants(
    target: LocalTarget, read_only_root: bool
) -> None:
    seen = _probe(target, AUTH, read_only_root)
    assert seen["writable"] == {
        "/": not read_only_root,
        "/etc": not read_only_root,
        "/usr": False,  # the image's files
        "/data": True,  # the PVC
        "/tmp": True,  # the emptyDir
        "/etc/helm-ai-kernel/policy": False,  # a ConfigMap: read-only whatever the mount says
        "/var/run/helm-signing-key": False,  # a Secret
    }
    assert not any(seen["visible"].values()), seen["visible"]
    # Its own network: of the host's loopback only what its env names (an upstream, a database).
    assert seen["reaches"] == {"undeclared": False, "declared": True}
    # defaultMode 0400 (256) plus the group-read bits the kubelet adds for fsGroup 65534
    assert seen["modes"] == {
        "/var/run/helm-signing-key/root.key": 0o440,
        "/etc/helm-ai-kernel/policy/serve-policy.toml": 0o644,
    }
    assert (seen["uid"], seen["gid"], seen["umask"]) == (65534, 65534, 0o077)
    declared = {
        e["name"] for e in target.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # bwrap sets PWD to the working directory; Python itself adds LC_CTYPE under the C locale.
    assert set(seen["env"]) - {"LC_CTYPE"} == declared | {
        "PATH",
        "HOME",
        "PYTHONDONTWRITEBYTECODE",
        "PWD",
    }
    assert seen["pwd"] == "/"


def test_the_probe_runs_as_the_containers_own_identity(target: LocalTarget) -> None:
    values = {
        **AUTH,
        "podSecurityContext": {"runAsUser": 1001, "runAsGroup": 1002, "fsGroup": 1002},
    }
    seen = _probe(target, values, read_only_root=True)
    assert (seen["uid"], seen["gid"]) == (1001, 1002)


def test_an_fs_group_the_sandbox_cannot_map_is_refused(target: LocalTarget) -> None:
    release = render(CHART_DIR, {**AUTH, "podSecurityContext": {"fsGroup": 2000}})
    target.apply(release)
    with pytest.raises(StepFailed) as refused:
        target.start_pod()
    assert "fsGroup equal to runAsGroup" in refused.value.expected


def test_every_host_file_the_target_and_its_pod_write_is_owner_only(target: LocalTarget) -> None:
    target.apply(render(CHART_DIR, AUTH))
    target.start_pod()
    target.wait_ready()
    body = {"tool": "t", "effect_level": "E1", "session_id": "s"}
    assert (
        httpx.post(target.url() + "/api/v1/evaluate", headers=HEADERS, json=body).status_code == 200
    )
    target.restart_pod()
    target.wait_ready()
    pvc = target.pvc_dir("helm-ai-kernel-data")
    assert {"helm.db", "root.key"} <= {p.name for p in pvc.iterdir()}
    volumes = {
        p for p in target.workdir.glob("pods/*/volumes/*") if p.name in ("policy", "signing-key")
    }
    wide = []
    for root, dirs, files in os.walk(target.workdir):
        for name in [*dirs, *files]:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or (path.parent in volumes and stat.S_ISREG(mode)):
                continue  # Secret/ConfigMap items keep their kubelet modes behind 0700 directories
            if mode & 0o077:
                wide.append(f"{path.relative_to(target.workdir)} {stat.filemode(mode)}")
    assert target.workdir.stat().st_mode & 0o777 == 0o700
    assert wide == []


def test_egress_is_the_loopback_ports_the_env_names() -> None:
    env = {
        "HELM_UPSTREAM_URL": "http://127.0.0.1:9999/v1",
        "DATABASE_URL": "postgresql://u:pw@localhost:5433/db?sslmode=disable",
        "HELM_POLICY_CONTROLPLANE_URL": "https://policy.example:443/v1",  # not this machine
        "BROKEN_URL": "http://127.0.0.1:99999999/",
        "HELM_DATA_DIR": "/data",
    }
    assert egress_ports(env) == [5433, 9999]
