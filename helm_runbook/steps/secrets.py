"""Secret setup: the guide's ``kubectl create secret generic`` for signing and API keys.

Values come from ``HELM_RUNBOOK_SIGNING_KEY`` / ``HELM_RUNBOOK_ADMIN_API_KEY`` /
``HELM_RUNBOOK_SERVICE_API_KEY`` when set, else are generated (``secrets``/PyNaCl). Only
fingerprints are ever shown or recorded; values are never parameters, outputs or log lines.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets as token
import time
from typing import Any

from nacl.signing import SigningKey

from helm_runbook.errors import SecretMaterialMissing
from helm_runbook.formats.keys import Signer
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport
from helm_runbook.targets.base import Target

ENV = {
    "signing": "HELM_RUNBOOK_SIGNING_KEY",
    "admin": "HELM_RUNBOOK_ADMIN_API_KEY",
    "service": "HELM_RUNBOOK_SERVICE_API_KEY",
}


def fingerprint(value: str) -> str:
    """``sha256:<12 hex>`` of a secret value: enough to compare, useless to an attacker."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def _value(kind: str, generate: Any) -> tuple[str, str]:
    from_env = os.environ.get(ENV[kind], "")
    return (from_env, "env " + ENV[kind]) if from_env else (generate(), "generated")


def prepare_secrets(
    target: Target, *, signing_secret: str = "helm-signing", auth_secret: str = "helm-auth"
) -> StepReport:
    """Create the signing and auth Secrets the production install references (existing ones are kept)."""
    start = time.perf_counter()
    rows: list[list[object]] = []
    values: dict[str, object] = {}
    if signing_secret not in target.secrets:
        seed, source = _value("signing", lambda: SigningKey.generate().encode().hex())
        if not re.fullmatch(r"[0-9a-f]{64}", seed):
            raise SecretMaterialMissing(f"{ENV['signing']} must be 64 lowercase hex characters (an Ed25519 seed)",
                                        fix="generate one with `openssl rand -hex 32`")  # fmt: skip
        target.create_secret(signing_secret, {"signing-key": seed})
    else:
        source = "existing Secret"
    seed = target.secrets[signing_secret]["signing-key"].decode()
    public = Signer(SigningKey(bytes.fromhex(seed)))
    rows.append([signing_secret, "signing-key", public.fingerprint, source])
    values["signing_public_key"] = public.public_key_hex
    if auth_secret not in target.secrets:
        admin, admin_source = _value("admin", lambda: token.token_urlsafe(32))
        service, service_source = _value("service", lambda: token.token_urlsafe(32))
        target.create_secret(
            auth_secret, {"HELM_ADMIN_API_KEY": admin, "HELM_SERVICE_API_KEY": service}
        )
    else:
        admin_source = service_source = "existing Secret"
    auth = {k: v.decode() for k, v in target.secrets[auth_secret].items()}
    for key, source in (
        ("HELM_ADMIN_API_KEY", admin_source),
        ("HELM_SERVICE_API_KEY", service_source),
    ):
        rows.append([auth_secret, key, fingerprint(auth[key]), source])
        values[f"{key.lower()}_fingerprint"] = fingerprint(auth[key])
    values["secrets"] = [signing_secret, auth_secret]
    target.save()
    created = [
        f"kubectl create secret generic {signing_secret} --from-literal=signing-key=<64-char-ed25519-seed-hex>"
        if source != "existing Secret"
        else "",
        f"kubectl create secret generic {auth_secret} \\\n  --from-literal=HELM_ADMIN_API_KEY=<admin-api-key> \\\n"
        "  --from-literal=HELM_SERVICE_API_KEY=<service-api-key>"
        if admin_source != "existing Secret"
        else "",
    ]
    reused = [
        name for name, made in zip((signing_secret, auth_secret), created, strict=True) if not made
    ]
    command = "\n".join(
        [c for c in created if c] + ([f"kubectl get secret {' '.join(reused)}"] if reused else [])
    )
    result = StepReport("secrets.setup", "Secrets for a production install", ["Secret", "key", "fingerprint", "source"],
                        rows, summary="values never shown: fingerprints only", seconds=time.perf_counter() - start,
                        command=command, values=values)  # fmt: skip
    record(result)
    return result
