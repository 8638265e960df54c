"""Values and policy rules the runbooks share: one copy, so the notebooks stay a call per step and
the steps, the lab and the tests agree on what "the production release" means."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from helm_runbook.standins.process import free_port

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
) -> dict[str, Any]:  # fmt: skip
    """The guide's production skeleton from existing Secrets (runbook 02), persistence on, the
    proxy pointed at a loopback port for the stand-in upstream (``upstream_port``; 0 picks a
    free one). ``runtime_actions`` are the chart's inline policy; ``policy`` merges other
    ``helm.policy`` values (a ConfigMap source, a signature)."""
    port = int(upstream_port) or free_port()
    helm: dict[str, Any] = {
        "production": True,
        "signing": {"existingSecret": signing_secret},
        "auth": {"existingSecret": auth_secret},
        "proxy": {"upstream": f"http://127.0.0.1:{port}/v1"},
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
        from helm_runbook.errors import StepFailed

        raise StepFailed("install.inline", expected=f"Secrets {signing_secret} and {auth_secret}", seen="not found",
                         fix="run runbook 02-secret-setup first")  # fmt: skip
    values = production_values(upstream_port=upstream_port, runtime_actions=runtime_actions)
    values["helm"]["signing"] = {"key": signing["signing-key"].decode()}
    values["helm"]["auth"] = {"adminAPIKey": auth["HELM_ADMIN_API_KEY"].decode(),
                              "serviceAPIKey": auth["HELM_SERVICE_API_KEY"].decode()}  # fmt: skip
    return values


__all__ = [
    "HOSTNAME_ARGS",
    "READ_HOSTNAME",
    "STAND_IN_MODELS",
    "inline_production_values",
    "production_values",
]
