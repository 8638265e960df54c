"""The run profile: the names and choices runbooks 02-09 share, set once.

A small YAML file (``build/profile.yaml`` by default; a relative path is relative to the
repository, like the target's workdir) that the operator writes by hand or that runbook 02 or 03
writes. Every runbook reads it; a notebook parameter left at its unset value (``""``) takes the
profile's value, any other value overrides it. Runbooks 02 and 03 (which create the Secrets and
the release the names refer to) save what they were given; 04-09 apply overrides to their own run.

It holds names only (Secret, ConfigMap, release), never key material: it is shown as a table.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from helm_runbook.errors import InputError
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport, Table

DEFAULT_PROFILE = "build/profile.yaml"
MAX_PROFILE_BYTES = 64 << 10  # a profile is a dozen lines; anything larger is not one
MAX_MODELS = 64
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


@dataclass(frozen=True)
class RunProfile:
    """What the runbooks share. ``target`` is ``local`` or a kube context; ``upstream_url`` and
    ``upstream_models`` are the operator's OpenAI-compatible provider (empty: the local target's
    stand-in upstream and its ``mock-`` models); ``values_file`` holds extra chart values merged
    over the runbooks' presets (a policy, resources)."""

    target: str = "local"
    namespace: str = ""
    release: str = "helm-ai-kernel"
    signing_secret: str = "helm-signing"
    auth_secret: str = "helm-auth"
    policy_trust_secret: str = "helm-policy-trust"
    policy_config_map: str = "helm-policy"
    upstream_url: str = ""
    upstream_models: tuple[str, ...] = ()
    values_file: str = ""

    def __post_init__(self) -> None:
        _check_profile(self)

    @property
    def on_cluster(self) -> bool:
        return self.target != "local"

    @property
    def proxy_model(self) -> str | None:
        """The model runbook 04 sends through the governed proxy: the first of the profile's
        upstream models, the stand-in's ``mock-model`` without an upstream, None (no proxy
        check) for an upstream whose models the profile does not name."""
        if not self.upstream_url:
            return "mock-model"
        return self.upstream_models[0] if self.upstream_models else None

    @property
    def target_spec(self) -> str:
        """What ``open_target`` takes: ``local``, ``CONTEXT`` or ``CONTEXT/NAMESPACE``."""
        return (
            f"{self.target}/{self.namespace}" if self.on_cluster and self.namespace else self.target
        )

    def open(self, workdir: str | Path) -> Any:
        """The target this profile names, attached to its release (the kube target finds the
        release's objects by ``app.kubernetes.io/instance=<release>``)."""
        from helm_runbook.targets import open_target

        return open_target(self.target_spec, workdir, release=self.release)

    def extra_values(self) -> dict[str, Any]:
        """The chart values of ``values_file`` (empty without one), read bounded and strict."""
        if not self.values_file:
            return {}
        from helm_runbook.targets import resolve_workdir

        loaded = _read_yaml(resolve_workdir(self.values_file), "values_file")
        if not isinstance(loaded, dict):
            raise InputError(f"values_file {self.values_file}: a YAML mapping of chart values expected, "
                             f"got {type(loaded).__name__}", fix="write chart values as a YAML mapping, like the chart values.yaml")  # fmt: skip
        return loaded

    def save(self, path: str | Path) -> Path:
        """Write the profile as YAML (owner-only: it names the operator's Secrets)."""
        from helm_runbook.targets import resolve_workdir

        out = resolve_workdir(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["upstream_models"] = list(self.upstream_models)
        text = ("# helm-runbook run profile: names shared by runbooks 02-09 (README: Run profile)\n"
                + yaml.safe_dump(data, sort_keys=False))  # fmt: skip
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o600)
        tmp.replace(out)
        return out

    def table(self) -> Table:
        """Every setting, its value and where it came from (names only: nothing secret)."""
        sources: dict[str, str] = getattr(self, "_sources", {})
        rows = [
            [f.name, _shown(getattr(self, f.name)), sources.get(f.name, "")] for f in fields(self)
        ]
        return Table("run profile", ["setting", "value", "from"], rows,
                     summary=f"{self.release} on {self.target_spec}")  # fmt: skip

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def __str__(self) -> str:
        return str(self.table())


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    return str(value) if value != "" else "(none)"


def _fail(key: str, seen: str, expected: str) -> InputError:
    return InputError(f"run profile: {key} is {seen}; expected {expected}",
                      fix=f"correct {key} in the profile file or pass the {key} parameter")  # fmt: skip


def check_target(target: str) -> None:
    """``local``, ``CONTEXT`` or ``CONTEXT/NAMESPACE`` as the profile would hold it (InputError
    otherwise): what ``--target`` and the ``target`` parameter accept."""
    context, _, namespace = target.partition("/")
    if context == "local" and namespace:
        raise _fail("target", repr(target), '"local" (without a namespace) or a kube context name')
    RunProfile(target=context, namespace=namespace)


def _check_profile(p: RunProfile) -> None:
    """Names as the API server would accept them, URLs and model ids usable as written."""
    for f in fields(p):
        value = getattr(p, f.name)
        if f.name == "upstream_models":
            if not isinstance(value, tuple) or not all(isinstance(m, str) for m in value):
                raise _fail(f.name, repr(value), "a list of model names")
            continue
        if not isinstance(value, str):
            raise _fail(f.name, f"a {type(value).__name__} ({value!r})", "a string")
    if not p.target or len(p.target) > 253 or "/" in p.target:
        raise _fail(
            "target",
            repr(p.target),
            '"local" or a kube context name (the namespace goes in namespace)',
        )
    if p.namespace and (len(p.namespace) > 63 or not _DNS_LABEL.fullmatch(p.namespace)):
        raise _fail(
            "namespace", repr(p.namespace), "a DNS-1123 label (lowercase letters, digits, '-')"
        )
    if len(p.release) > 53 or not _DNS_LABEL.fullmatch(p.release):
        raise _fail(
            "release",
            repr(p.release),
            "a Helm release name: a DNS-1123 label of at most 53 characters",
        )
    for key in ("signing_secret", "auth_secret", "policy_trust_secret", "policy_config_map"):
        name = getattr(p, key)
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise _fail(
                key, repr(name), "a Kubernetes object name (lowercase letters, digits, '-', '.')"
            )
    if p.upstream_url:
        parts = urlsplit(p.upstream_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or len(p.upstream_url) > 2048
        ):
            raise _fail(
                "upstream_url",
                repr(p.upstream_url),
                "an http(s) URL such as https://api.openai.com/v1",
            )
    if len(p.upstream_models) > MAX_MODELS or not all(
        _MODEL.fullmatch(m) for m in p.upstream_models
    ):
        raise _fail(
            "upstream_models", repr(list(p.upstream_models)[:4]), f"at most {MAX_MODELS} model ids"
        )


def _read_yaml(path: Path, what: str) -> Any:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read it ({exc.strerror})",
                         fix=f"check the path and its permissions, or write {path.name}") from exc  # fmt: skip
    if len(raw) > MAX_PROFILE_BYTES:
        raise InputError(f"{what} {path}: larger than {MAX_PROFILE_BYTES} bytes",
                         fix="a profile holds a few names; point at the right file")  # fmt: skip
    try:
        return yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{what} {path}: not valid YAML ({str(exc).splitlines()[0]})",
                         fix="fix the YAML syntax (one `key: value` per line)") from exc  # fmt: skip


def load_profile(path: str | Path) -> RunProfile:
    """Read a profile file; unknown keys, wrong types and unreadable files are refused."""
    from helm_runbook.targets import resolve_workdir

    resolved = resolve_workdir(path)
    data = _read_yaml(resolved, "run profile")
    if data is None:
        return RunProfile()
    if not isinstance(data, dict):
        raise InputError(f"run profile {resolved}: a mapping of settings expected, got {type(data).__name__}",
                         fix="write one `setting: value` per line")  # fmt: skip
    known = {f.name for f in fields(RunProfile)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise InputError(f"run profile {resolved}: unknown setting {unknown[0]!r}",
                         fix=f"remove it; the settings are {', '.join(sorted(known))}")  # fmt: skip
    settings = dict(data)
    if "upstream_models" in settings:
        models = settings["upstream_models"]
        if models is None:
            models = []
        if not isinstance(models, list):
            raise _fail(
                "upstream_models", f"a {type(models).__name__}", "a YAML list of model names"
            )
        settings["upstream_models"] = tuple(models)
    for key, value in settings.items():
        if value is None and key != "upstream_models":
            settings[key] = ""
    return RunProfile(**settings)


def use_profile(
    path: str | Path = DEFAULT_PROFILE, *, save: bool = False, **overrides: Any
) -> RunProfile:
    """The effective profile: the file's settings (defaults when it does not exist yet), each
    override that is set (not ``""``, ``None`` or an empty list) in their place. ``target`` may be
    ``CONTEXT/NAMESPACE``. With ``save``, the result is written back (runbooks 02 and 03: what
    they create is named so for every runbook after them). Recorded as the ``profile`` step."""
    start = time.perf_counter()
    from helm_runbook.targets import resolve_workdir

    resolved = resolve_workdir(path)
    exists = resolved.exists()
    base = load_profile(resolved) if exists else RunProfile()
    known = {f.name for f in fields(RunProfile)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(
            f"use_profile: unknown setting {unknown[0]!r}",
            fix=f"the settings are {', '.join(sorted(known))}",
        )
    given: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None or value == "" or (isinstance(value, list | tuple) and not value):
            continue
        if key == "upstream_models":
            value = (
                tuple(m.strip() for m in value.split(",") if m.strip())
                if isinstance(value, str)
                else tuple(value)
            )
        given[key] = value
    if "target" in given and "/" in str(given["target"]):
        given["target"], given["namespace"] = str(given["target"]).split("/", 1)
    profile = replace(base, **given)
    origin = f"profile {resolved.name}" if exists else "default"
    sources = {f.name: ("parameter" if f.name in given else origin) for f in fields(RunProfile)}
    saving = save and bool(given or not exists)
    if saving:  # what cannot be used is never saved for later runbooks
        profile.extra_values()  # a values_file that is missing or not chart values
        if profile.on_cluster:
            from helm_runbook.targets import reach

            reach(profile.target_spec)  # a context whose API server cannot be used
        profile.save(resolved)
    object.__setattr__(profile, "_sources", sources)  # shown by table(), not a setting
    table = profile.table()
    report = StepReport("profile", "run profile", list(table.columns), [list(r) for r in table.rows],
                        summary=f"{'saved to' if save else 'read from'} {resolved.name}" if (exists or save)
                        else f"{resolved.name} not written yet: defaults",
                        seconds=time.perf_counter() - start,
                        values={"release": profile.release, "target": profile.target_spec,
                                "signing_secret": profile.signing_secret, "auth_secret": profile.auth_secret,
                                "saved": saving,
                                "parameters": sorted(given)})  # fmt: skip
    record(report)
    return profile


def models_rule(models: tuple[str, ...] | list[str]) -> dict[str, str]:
    """LLM_INFERENCE for exactly ``models`` (the operator's upstream), as a runtime action."""
    return {"action": "LLM_INFERENCE",
            "expression": f"input.effect.params.model in {json.dumps(list(models))}",
            "description": "chat completions to the profile's upstream models only"}  # fmt: skip


__all__ = ["DEFAULT_PROFILE", "RunProfile", "load_profile", "models_rule", "use_profile"]
