"""The runtime environment reference page: every variable the runtime reads (recorded from
``Settings.from_env``) and which chart value sets it in the rendered Deployment."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.docs import value_docs
from helm_runbook.site.markup import identifier as _identifier
from helm_runbook.site.markup import md_cell as _md
from helm_runbook.site.reference import schema_node as _schema_node


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name the runtime asks for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def _seen(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)

    def __getitem__(self, name: str) -> str:
        self._seen(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._seen(name)
        return default

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._seen(name)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def runtime_env_names() -> list[str]:
    """The variables ``Settings.from_env`` reads, in the order it reads them (recorded, not parsed)."""
    from helm_runbook.runtime.settings import Settings

    env = _RecordingEnv()
    Settings.from_env(
        policy_path=Path("serve-policy.toml"),
        addr="127.0.0.1",
        port=8080,
        data_dir=Path("data"),
        environ=env,
    )
    return env.names


# -- environment: which value sets each variable, read from rendered Deployments --------------

#: Value sets the env reference is computed from: together they switch on every variable the
#: Deployment template can set (inline keys; existing Secrets in production; each policy source).
ENV_PROFILES: tuple[dict[str, Any], ...] = (
    {"helm": {"signing": {"key": "c3" * 32},
              "auth": {"adminAPIKey": "admin-key-0123456789", "serviceAPIKey": "service-key-0123456789"},
              "metrics": {"enabled": True},
              "storage": {"type": "postgres", "postgres": {"host": "db.example", "password": "pg-password"}},
              "policy": {"signature": {"publicKey": "ab" * 32}}}},
    {"helm": {"production": True, "proxy": {"upstream": "https://llm.example/v1"},
              "signing": {"existingSecret": "acme-signing"}, "auth": {"existingSecret": "acme-auth"},
              "storage": {"type": "postgres", "postgres": {"existingSecret": "acme-db"}},
              "policy": {"signature": {"required": True, "existingSecret": "acme-policy-key"}}}},
    {"helm": {"signing": {"key": "c3" * 32}, "auth": {"adminAPIKey": "admin-key-0123456789",
                                                      "serviceAPIKey": "service-key-0123456789"},
              "policy": {"signature": {"publicKey": "ab" * 32},
                         "source": {"kind": "controlplane",
                                    "controlplane": {"url": "https://policy.example",
                                                     "auth": {"mode": "bearerToken", "existingSecret": "acme-cp"}}}}}},
    {"helm": {"signing": {"key": "c3" * 32}, "auth": {"adminAPIKey": "admin-key-0123456789",
                                                      "serviceAPIKey": "service-key-0123456789"},
              "policy": {"source": {"kind": "crd"}}}},
)  # fmt: skip

#: Variables the runtime reads that no chart value sets (what each does, from settings.py).
RUNTIME_ONLY = {
    "HELM_LOG_FORMAT": "Log line format: `json` (default) or `text`.",
    "HELM_SQLITE_SYNCHRONOUS": "SQLite `synchronous` pragma for the receipt store: NORMAL (default), FULL or EXTRA.",
    "HELM_DEPLOYMENT_ID": "Deployment id reported by the runtime (empty by default).",
    "HELM_HTTP_HEADER_TIMEOUT": "Seconds a client has to send the request line and headers (default 10, then 408).",
    "HELM_HTTP_BODY_TIMEOUT": "Seconds a client has to send the whole body (default 30, then 408).",
    "HELM_BODY_BUDGET_BYTES": "Request-body bytes the whole process may buffer at once (default 50331648 = 48 MiB; 0 disables), else 503 `BODY_BUDGET_EXHAUSTED` with `Retry-After`.",
    "HELM_ANONYMOUS_RECEIPTS_PER_MINUTE": "Receipts the anonymous proxy may write per minute for one client address (default 600; 0 disables), else 429.",
    "HELM_ANONYMOUS_RECEIPTS_PER_MINUTE_TOTAL": "Receipts the anonymous proxy may write per minute for all addresses together (default 3000; 0 disables): bounds the store's growth from anonymous callers.",
    "HELM_POLICY_CRD_NAMESPACE": "Namespace watched for policy bundle resources (crd source; default `POD_NAMESPACE`).",
    "POD_NAMESPACE": "The pod's namespace, the crd source's default namespace.",
}  # fmt: skip

#: Variables the chart sets to a constant (no value changes them), and why.
CHART_CONSTANTS = {
    "HELM_EMERGENCY_STOP_FENCE_ENABLED": "Always `0`: this chart does not support the emergency-stop fence.",
    "HELM_ENABLE_OPENAI_PROXY": "`1` while the governed OpenAI-compatible proxy is on.",
    "HELM_DEMO_MODE": "`1` in demo mode (development only).",
}  # fmt: skip


@dataclass
class EnvSource:
    """What sets one variable: values that set it directly, values that set it through a Secret
    the chart renders, values that name the Secret or key it is read from, and switches."""

    direct: list[str] = field(default_factory=list)
    through_secret: list[tuple[str, str, str]] = field(default_factory=list)  # value, Secret, key
    secret_name: list[str] = field(default_factory=list)
    secret_key: list[str] = field(default_factory=list)
    refs: list[tuple[str, str]] = field(default_factory=list)  # (Secret, key) as rendered
    switches: list[str] = field(default_factory=list)  # values that add or remove the variable


def _env_entries(release: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in release.get("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]:
        out.setdefault(entry["name"], []).append(entry)
    return out


def _secret_data(release: Any) -> dict[str, dict[str, str]]:
    import base64

    out: dict[str, dict[str, str]] = {}
    for obj in release.of_kind("Secret"):
        data = {
            k: base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()
        }
        out[obj["metadata"]["name"]] = data | dict(obj.get("stringData") or {})
    return out


def _perturbed(value: object, enum: list[Any]) -> list[object]:
    """Other values of the same kind to try in place of ``value`` (the schema refuses some)."""
    if enum:
        return [v for v in enum if v != value][:1]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 7, value + 1]
    if isinstance(value, str) and value:
        bumped = re.sub(r"\d+", lambda m: str(int(m.group()) + 7), value, count=1)
        hexed = "de" + value[2:] if re.fullmatch(r"[0-9a-f]{64}", value) else ""
        return [v for v in (hexed, bumped, value + "x", "z" + value) if v and v != value]
    return []


def _with(values: dict[str, Any], path: str, new: object) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(values)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = new
    return out


#: A perturbation: its order among the profile's values, the dotted path, the replacements to try.
Trial = tuple[int, str, list[object]]
#: What one render showed for a trial: the order, the path, the value tried, the env and Secrets.
Seen = tuple[int, str, object, dict[str, list[dict[str, Any]]], dict[str, dict[str, str]]]


@functools.cache
def env_sources() -> dict[str, EnvSource]:
    """Variable → what sets it, found by rendering each of ENV_PROFILES and changing values: a
    value sets a variable when the variable (or the Secret data it is read from) then holds the
    new value. Nothing is read from the template's text.

    Switches (booleans, enums) change one at a time (most of them set or drop a variable, which
    only a single flip attributes); the other values change together in one render, split in halves only where Helm refuses the batch or a change cannot be told apart
    (a variable gone, or a change holding a new value the base render could already show): a
    few dozen renders, not hundreds, for the same page."""
    from helm_runbook.chart import render
    from helm_runbook.chart.docs import _leaves

    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    out: dict[str, EnvSource] = {}
    for profile in ENV_PROFILES:
        base = render(CHART_DIR, profile)
        env, secrets = _env_entries(base), _secret_data(base)
        merged = dict(_leaves(defaults)) | dict(_leaves(profile))
        shown = json.dumps([env, secrets])
        for name, entries in env.items():
            source = out.setdefault(name, EnvSource())
            for entry in entries:
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"], ref["key"]) not in source.refs:
                    source.refs.append((ref["name"], ref["key"]))
        switches: list[Trial] = []
        together: list[Trial] = []
        for index, (path, value) in enumerate(merged.items()):
            if isinstance(value, (dict, list)) or value is None:
                continue
            if not isinstance(value, bool) and str(value) not in shown:
                continue  # no variable or Secret holds it: it cannot set one
            enum = list((_schema_node(schema, path) or {}).get("enum", []))
            tries = _perturbed(value, enum)
            if tries:
                (switches if enum or isinstance(value, bool) else together).append(
                    (index, path, tries)
                )
        seen = [s for trial in switches if (s := _probe_alone(profile, trial))]
        for batch in _distinct_batches(together):
            seen += _probe_together(profile, batch, env, secrets, shown)
        for _, path, new, env2, secrets2 in sorted(seen, key=lambda s: s[0]):
            _attribute(out, path, new, env, secrets, env2, secrets2)
    return out


def _probe_alone(profile: dict[str, Any], trial: Trial) -> Seen | None:
    """Render with one value changed (the first replacement Helm accepts)."""
    from helm_runbook.chart import render
    from helm_runbook.errors import ChartError

    index, path, tries = trial
    for new in tries:
        try:
            changed = render(CHART_DIR, _with(profile, path, new))
        except ChartError:
            continue
        return index, path, new, _env_entries(changed), _secret_data(changed)
    return None


def _distinct_batches(trials: list[Trial]) -> list[list[Trial]]:
    """``trials`` in batches whose new values cannot be mistaken for one another: no two equal,
    none longer than two characters inside another (``limits.global.rps`` and ``limits.actor.rps``
    both become 67, so they go to different renders)."""

    def clash(a: str, b: str) -> bool:
        return a == b or (len(a) > 2 and a in b) or (len(b) > 2 and b in a)

    batches: list[list[Trial]] = []
    for trial in trials:
        text = str(trial[2][0])
        batch = next((b for b in batches if not any(clash(text, str(t[2][0])) for t in b)), None)
        if batch is None:
            batches.append(batch := [])
        batch.append(trial)
    return batches


def _probe_together(profile: dict[str, Any], trials: list[Trial], env: dict[str, list[dict[str, Any]]],
                    secrets: dict[str, dict[str, str]], shown: str) -> list[Seen]:  # fmt: skip
    """Render with every value of ``trials`` changed at once, or split the batch in halves when
    Helm refuses it or a change in it could have more than one cause."""
    from helm_runbook.chart import render
    from helm_runbook.errors import ChartError

    if len(trials) <= 1:
        return [s for trial in trials if (s := _probe_alone(profile, trial))]
    values = profile
    for _, path, tries in trials:
        values = _with(values, path, tries[0])
    try:
        changed = render(CHART_DIR, values)
    except ChartError:
        changed = None
    if changed is not None:
        env2, secrets2 = _env_entries(changed), _secret_data(changed)
        if _separable([tries[0] for _, _, tries in trials], shown, env, secrets, env2, secrets2):
            return [(index, path, tries[0], env2, secrets2) for index, path, tries in trials]
    half = len(trials) // 2
    return [*_probe_together(profile, trials[:half], env, secrets, shown),
            *_probe_together(profile, trials[half:], env, secrets, shown)]  # fmt: skip


def _separable(news: list[object], shown: str, env: dict[str, list[dict[str, Any]]],
               secrets: dict[str, dict[str, str]], env2: dict[str, list[dict[str, Any]]],
               secrets2: dict[str, dict[str, str]]) -> bool:  # fmt: skip
    """True when every variable stayed and every changed text (a value, a Secret's name, key or
    data) can only have got each new value it holds from that value: a new value counts as
    telling when it is longer than two characters, absent from the base render (``shown``) and
    not part of another new value (nor equal to one); a change holding an untelling one must hold no other."""
    texts = [str(new) for new in news]
    telling = {t for t in texts if len(t) > 2 and t not in shown
               and sum(t in other for other in texts) == 1}  # fmt: skip

    def clear(seen: str) -> bool:
        held = [t for t in texts if t == seen or (len(t) > 2 and t in seen)]
        return len(held) <= 1 or all(t in telling for t in held)

    for name, entries in env.items():
        after_entries = env2.get(name)
        if after_entries is None or len(after_entries) != len(entries):
            return False
        for before, after in zip(entries, after_entries, strict=True):
            if before.get("value") != after.get("value") and not clear(str(after.get("value"))):
                return False
            ref = before.get("valueFrom", {}).get("secretKeyRef") or {}
            ref2 = after.get("valueFrom", {}).get("secretKeyRef") or {}
            for part in ("name", "key"):
                if ref.get(part) != ref2.get(part) and not clear(str(ref2.get(part))):
                    return False
            held = secrets.get(ref.get("name", ""), {}).get(ref.get("key", ""))
            held2 = secrets2.get(ref2.get("name", ""), {}).get(ref2.get("key", ""))
            if held != held2 and not clear(str(held2)):
                return False
    return True


def _attribute(out: dict[str, EnvSource], path: str, new: object, env: dict[str, list[dict[str, Any]]],
               secrets: dict[str, dict[str, str]], env2: dict[str, list[dict[str, Any]]],
               secrets2: dict[str, dict[str, str]]) -> None:  # fmt: skip
    text = ("1", "true") if new is True else ("0", "false") if new is False else (str(new),)
    for name, entries in env.items():
        source = out[name]
        if name not in env2 and path not in source.switches:
            source.switches.append(path)
        for before, after in zip(entries, env2.get(name, []), strict=False):
            if "value" in before and before.get("value") != after.get("value"):
                seen = str(after.get("value"))
                sets = any(t == seen or (len(t) > 2 and t in seen) for t in text)
                if sets and path not in source.direct:
                    source.direct.append(path)
            ref = before.get("valueFrom", {}).get("secretKeyRef")
            ref2 = after.get("valueFrom", {}).get("secretKeyRef")
            if not ref or not ref2:
                continue
            if (
                ref2["name"] != ref["name"]
                and ref2["name"] == str(new)
                and path not in source.secret_name
            ):
                source.secret_name.append(path)
            if (
                ref2["key"] != ref["key"]
                and ref2["key"] == str(new)
                and path not in source.secret_key
            ):
                source.secret_key.append(path)
            held = secrets.get(ref["name"], {}).get(ref["key"])
            held2 = secrets2.get(ref2["name"], {}).get(ref2["key"])
            if held is not None and held2 is not None and held != held2 and str(new) in held2:
                item = (path, ref["name"], ref["key"])
                if item not in source.through_secret:
                    source.through_secret.append(item)


def _fullname(secret: str) -> str:
    return (
        secret.replace("helm-ai-kernel", "<fullname>", 1)
        if secret.startswith("helm-ai-kernel")
        else secret
    )


def _set_by(name: str, source: EnvSource | None) -> str:
    if source is None:
        return "not set by the chart"
    parts = [", ".join(_identifier(p) for p in source.direct)] if source.direct else []
    for value, secret, key in source.through_secret:
        parts.append(
            f"{_identifier(value)} through Secret {_identifier(_fullname(secret))} key {_identifier(key)}"
        )
    if source.secret_name:
        named = " or ".join(_identifier(p) for p in source.secret_name)
        key = (f", key named by {' or '.join(_identifier(p) for p in source.secret_key)}"
               if source.secret_key else "")  # fmt: skip
        parts.append(f"your Secret named by {named}{key}")
    if not parts:
        parts.append("the chart (a fixed value)")
    if source.switches and not source.direct:
        parts.append("present depending on " + ", ".join(_identifier(p) for p in source.switches))
    return "; ".join(parts)


def env_page() -> str:
    """Every variable the runtime reads, what sets it in the rendered Deployment (a value directly,
    or through which Secret and key), and a description."""
    descriptions = {doc.key: doc.description for doc in value_docs(CHART_DIR / "values.yaml")}
    sources = env_sources()
    read = runtime_env_names()
    rows = ["| Variable | Set by | Description |", "| --- | --- | --- |"]
    for name in read:
        source = sources.get(name)
        setters = (
            [*source.direct, *(v for v, _, _ in source.through_secret), *source.secret_name]
            if source
            else []
        )
        described = (
            next((descriptions[p] for p in setters if name in descriptions.get(p, "")), "")
            or next((descriptions[p] for p in setters if descriptions.get(p)), "")
            or CHART_CONSTANTS.get(name, "")
            or RUNTIME_ONLY.get(name, "")
            or next((t for t in descriptions.values() if f"({name})" in t or f"`{name}`" in t), "")
        )  # fmt: skip
        rows.append(f"| {_identifier(name)} | {_set_by(name, source)} | {_md(described)} |")
    ignored = sorted(set(sources) - set(read))
    return (
        "# Runtime environment\n\nRecorded from the reference runtime's `Settings.from_env` (every name it "
        "reads) and matched with the chart's rendered Deployment when the site is built: a value "
        "*sets* a variable when changing it changes what the Deployment (or the Secret it reads the "
        "variable from) holds. `<fullname>` is the release's full name.\n\n"
        + "\n".join(rows)
        + "\n\n## Set by the chart, ignored by the runtime\n\nUpstream's serve path ignores these too "
        "([upstream contract, D7](../upstream-contract.md#d7)); the chart sets them for the full kernel.\n\n"
        + "\n".join(f"- `{name}`" for name in ignored)
        + "\n"
    )
