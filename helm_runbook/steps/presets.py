"""Values and policy rules the runbooks share: one copy, so the notebooks stay a call per step and
the steps, the lab and the tests agree on what "the production release" means."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from helm_runbook.errors import StepFailed
from helm_runbook.standins.process import free_port
from helm_runbook.steps.profile import RunProfile, models_rule

#: LLM_INFERENCE for the stand-in upstream's models only (every other model is denied).
STAND_IN_MODELS: dict[str, str] = {
    "action": "LLM_INFERENCE",
    "expression": 'input.effect.params.model.startsWith("mock-")',
    "description": "chat completions to the stand-in upstream's models only",
}
#: file_read of /etc/hostname only: the policy change runbooks 05 and 06 roll out.
READ_HOSTNAME: dict[str, str] = {
    "action": "file_read",
    "expression": 'input.effect.params.args.path == "/etc/hostname"',
    "description": "read the host name only",
}
HOSTNAME_ARGS: dict[str, str] = {"path": "/etc/hostname"}


def production_values(
    *, signing_secret: str = "helm-signing", auth_secret: str = "helm-auth", upstream_port: int = 0,
    runtime_actions: Sequence[Mapping[str, Any]] | None = None, policy: Mapping[str, Any] | None = None,
    upstream_url: str = "",
) -> dict[str, Any]:  # fmt: skip
    """The guide's production skeleton from existing Secrets (runbook 02), persistence on, the
    proxy pointed at ``upstream_url``, or without one at a loopback port for the stand-in
    upstream (``upstream_port``; 0 picks a free one). ``runtime_actions`` are the chart's inline
    policy; ``policy`` merges other ``helm.policy`` values (a ConfigMap source, a signature)."""
    upstream = upstream_url or f"http://127.0.0.1:{int(upstream_port) or free_port()}/v1"
    helm: dict[str, Any] = {
        "production": True,
        "signing": {"existingSecret": signing_secret},
        "auth": {"existingSecret": auth_secret},
        "proxy": {"upstream": upstream},
    }
    chosen: dict[str, Any] = copy.deepcopy(dict(policy or {}))
    if runtime_actions:
        chosen["runtimeActions"] = [dict(action) for action in runtime_actions]
    if chosen:
        helm["policy"] = chosen
    return {"helm": helm, "persistence": {"enabled": True}}


def inline_production_values(
    target: Any, *, signing_secret: str = "helm-signing", auth_secret: str = "helm-auth", upstream_port: int = 0,
    runtime_actions: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The guide's first skeleton: the same key material as runbook 02's Secrets (read from them,
    as ``kubectl get secret`` would, so the kept volume's root.key matches), passed inline
    (``helm.signing.key``, ``helm.auth.adminAPIKey``, ``helm.auth.serviceAPIKey``), persistence on.
    The install step shows these values masked; nothing else displays them."""
    signing, auth = target.secrets.get(signing_secret), target.secrets.get(auth_secret)
    if not signing or not auth:
        raise StepFailed("install.inline", expected=f"Secrets {signing_secret} and {auth_secret}", seen="not found",
                         fix="run runbook 02-secret-setup first")  # fmt: skip
    values = production_values(upstream_port=upstream_port, runtime_actions=runtime_actions)
    values["helm"]["signing"] = {"key": signing["signing-key"].decode()}
    values["helm"]["auth"] = {"adminAPIKey": auth["HELM_ADMIN_API_KEY"].decode(),
                              "serviceAPIKey": auth["HELM_SERVICE_API_KEY"].decode()}  # fmt: skip
    return values


def chat_rule(profile: RunProfile) -> dict[str, str]:
    """LLM_INFERENCE for the profile's upstream models, or the stand-in's ``mock-`` models when
    the profile names no upstream (the local target's default only)."""
    return models_rule(profile.upstream_models) if profile.upstream_url else dict(STAND_IN_MODELS)


def _require_upstream(profile: RunProfile, step: str) -> None:
    """A cluster's pod cannot reach this machine's loopback: the stand-in is the local target's."""
    if profile.on_cluster and not profile.upstream_url:
        raise StepFailed(step, expected="the operator's upstream_url (and upstream_models) in the run profile on a cluster",
                         seen=f"no upstream_url for release {profile.release} on {profile.target_spec}: "
                              "the stand-in upstream on 127.0.0.1 serves the local target only",
                         fix="set upstream_url (e.g. https://api.openai.com/v1) and upstream_models in the profile "
                             "file, or pass them as parameters to runbook 03")  # fmt: skip


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``helm -f base -f extra``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def profile_values(
    profile: RunProfile, *, also_allow: Sequence[Mapping[str, Any]] = (), policy: Mapping[str, Any] | None = None,
    upstream_port: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """``production_values`` for the profile's Secrets and upstream, its ``values_file`` merged
    over. The inline policy allows chat to the profile's models (``chat_rule``) and
    ``also_allow``; a ``policy`` with a ``source`` (a ConfigMap) replaces the inline policy.
    On a cluster without ``upstream_url`` it refuses (the stand-in is the local target's)."""
    _require_upstream(profile, "install.values")
    actions = None if policy and "source" in policy else [chat_rule(profile), *also_allow]
    values = production_values(signing_secret=profile.signing_secret, auth_secret=profile.auth_secret,
                               upstream_port=upstream_port, upstream_url=profile.upstream_url,
                               runtime_actions=actions, policy=policy)  # fmt: skip
    return _merged(values, profile.extra_values())


def controlplane_values(
    profile: RunProfile, *, url: str, config_map: str, poll_interval: str, last_known_good_max_age: str,
    token_secret: str = "helm-policy-controlplane",
) -> dict[str, Any]:  # fmt: skip
    """The guide's control-plane production install (runbook 07): the policy fetched from ``url``
    with the bearer token of ``token_secret``, the packs mounted from ``config_map``, signatures
    required against the profile's trust Secret, fail-closed after ``last_known_good_max_age``
    without a fresh snapshot. Secrets from the profile; no inline policy."""
    _require_upstream(profile, "install.values")
    upstream = profile.upstream_url or f"http://127.0.0.1:{free_port()}/v1"
    values: dict[str, Any] = {"helm": {
        "production": True,
        "policy": {
            "source": {
                "kind": "controlplane",
                "pollInterval": poll_interval,
                "controlplane": {"url": url, "auth": {"mode": "bearerToken", "existingSecret": token_secret}},
                "mountedFile": {"existingConfigMap": config_map},
            },
            "signature": {"required": True, "existingSecret": profile.policy_trust_secret},
            "failClosed": {"lastKnownGoodMaxAge": last_known_good_max_age},
        },
        "signing": {"existingSecret": profile.signing_secret},
        "auth": {"existingSecret": profile.auth_secret},
        "proxy": {"upstream": upstream},
    }}  # fmt: skip
    return values


__all__ = [
    "HOSTNAME_ARGS",
    "READ_HOSTNAME",
    "STAND_IN_MODELS",
    "chat_rule",
    "controlplane_values",
    "inline_production_values",
    "production_values",
    "profile_values",
]
