"""The API server's rules for what the local target turns into host paths, env and identities.

A cluster refuses these objects before any kubelet sees them; the local target builds directories,
file names and mounts from them, so it applies the same rules first (names from Kubernetes'
``apimachinery/pkg/util/validation`` and ``core/validation``) and then resolves every path inside
its workdir. A refusal names the field, the rule and what was seen.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from helm_runbook.errors import StepFailed

CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
MAX_MODE = 0o777


def refuse(field: str, rule: str, seen: object) -> StepFailed:
    """The install refusal for one field: which, the rule it breaks, and what it held."""
    return StepFailed("install.validate", expected=f"{field}: {rule}", seen=f"{field} = {seen!r}",
                      fix=f"change {field} in the values (a Kubernetes API server refuses it too)")  # fmt: skip


def check_config_key(field: str, key: object) -> str:
    """A ConfigMap or Secret data key (IsConfigMapKey): it becomes a file name in a volume."""
    rule = "a ConfigMap/Secret key matches [-._a-zA-Z0-9]+, at most 253 characters, not '.', '..' or '..*'"
    if not isinstance(key, str) or len(key) > 253 or not CONFIG_KEY.fullmatch(key):
        raise refuse(field, rule, key)
    if key == "." or key.startswith(".."):
        raise refuse(field, rule, key)
    return key


def check_subdomain(field: str, name: object) -> str:
    """An object name (Secret, ConfigMap, PersistentVolumeClaim): a DNS-1123 subdomain."""
    if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
        raise refuse(
            field, "a DNS-1123 subdomain: lowercase a-z, 0-9, '-' and '.', at most 253", name
        )
    return name


def check_label(field: str, name: object) -> str:
    """A volume or container name: a DNS-1123 label."""
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
        raise refuse(field, "a DNS-1123 label: lowercase a-z, 0-9 and '-', at most 63", name)
    return name


def check_item_path(field: str, path: object) -> str:
    """A volume item's ``path``: relative, no '..' element, not starting with '..'."""
    rule = "a relative path without '..' elements"
    if not isinstance(path, str) or not path or path.startswith(("/", "..")) or "\0" in path:
        raise refuse(field, rule, path)
    if ".." in path.split("/"):
        raise refuse(field, rule, path)
    return path


def check_mount_path(field: str, path: object) -> str:
    """A container's ``mountPath``: absolute inside the sandbox, no '..' element, not the root."""
    rule = "an absolute path without '..' elements, not '/'"
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or ":" in path:
        raise refuse(field, rule, path)
    if ".." in path.split("/") or PurePosixPath(path) == PurePosixPath("/"):
        raise refuse(field, rule, path)
    return path


def check_probe_path(field: str, path: object) -> str:
    """An httpGet probe's path: absolute, no whitespace. The kubelet puts it after the pod's
    host and port; a path like ``@10.0.0.1:9999/x`` must never become another host's URL."""
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        raise StepFailed("install.validate", expected=f"{field}: an absolute HTTP path (starts with '/', no whitespace)",
                         seen=f"{field} = {path!r}",
                         fix="start the probe path with '/' (probes.*.httpGet.path; the chart's schema requires it): "
                             "the kubelet appends it to the pod's address")  # fmt: skip
    return path


def check_mode(field: str, mode: object) -> int:
    """``defaultMode``/``mode`` of a volume item: 0 to 0777 (octal)."""
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= MAX_MODE:
        raise refuse(field, "a file mode from 0 to 0777 (511)", mode)
    return mode


def check_id(field: str, value: object) -> int:
    """A uid or gid (``runAsUser``, ``runAsGroup``, ``fsGroup``): 0 to 2^31-1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise refuse(field, "an integer id from 0 to 2147483647", value)
    return value


def inside(base: Path, relative: str) -> Path:
    """``base/relative`` after resolving symlinks, refused when it lands outside ``base``."""
    root = base.resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise refuse(f"path {relative}", f"stays inside {root}", str(path))
    return path


def check_pod_spec(spec: dict[str, Any]) -> None:
    """Every field of a pod spec that the local target turns into a path, mount, env or id."""
    volumes = spec.get("volumes") or []
    for i, volume in enumerate(volumes):
        where = f"spec.volumes[{i}]"
        check_label(f"{where}.name", volume.get("name"))
        if "persistentVolumeClaim" in volume:
            check_subdomain(
                f"{where}.persistentVolumeClaim.claimName",
                volume["persistentVolumeClaim"].get("claimName"),
            )
        for kind, ref in (("secret", "secretName"), ("configMap", "name")):
            if kind not in volume:
                continue
            source = volume[kind]
            check_subdomain(f"{where}.{kind}.{ref}", source.get(ref))
            if "defaultMode" in source:
                check_mode(f"{where}.{kind}.defaultMode", source["defaultMode"])
            for j, item in enumerate(source.get("items") or []):
                check_config_key(f"{where}.{kind}.items[{j}].key", item.get("key"))
                check_item_path(f"{where}.{kind}.items[{j}].path", item.get("path"))
                if "mode" in item:
                    check_mode(f"{where}.{kind}.items[{j}].mode", item["mode"])
    names = {v.get("name") for v in volumes}
    context = spec.get("securityContext") or {}
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if key in context:
            check_id(f"spec.securityContext.{key}", context[key])
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            where = f"spec.{group}[{i}]"
            check_label(f"{where}.name", container.get("name"))
            for key in ("runAsUser", "runAsGroup"):
                if key in (container.get("securityContext") or {}):
                    check_id(f"{where}.securityContext.{key}", container["securityContext"][key])
            for j, entry in enumerate(container.get("env") or []):
                name = entry.get("name")
                if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
                    raise refuse(
                        f"{where}.env[{j}].name", "matches [-._a-zA-Z][-._a-zA-Z0-9]*", name
                    )
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = (container.get(probe) or {}).get("httpGet")
                if get is not None:
                    check_probe_path(f"{where}.{probe}.httpGet.path", get.get("path", "/"))
            for j, mount in enumerate(container.get("volumeMounts") or []):
                check_mount_path(f"{where}.volumeMounts[{j}].mountPath", mount.get("mountPath"))
                if mount.get("name") not in names:
                    raise refuse(
                        f"{where}.volumeMounts[{j}].name",
                        "names a volume of the pod",
                        mount.get("name"),
                    )
