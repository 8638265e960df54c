"""templates/secret.yaml: signing, auth and control-plane token Secrets."""

from __future__ import annotations

import base64
import re

from tests.chart.conftest import PRODUCTION, SEED, template


def _data(release, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: base64.b64decode(v).decode() for k, v in release.get("Secret", name)["data"].items()}


def test_dev_render_generates_a_64_hex_seed() -> None:
    seed = _data(template(), "helm-ai-kernel-signing")["signing-key"]
    assert re.fullmatch(r"[0-9a-f]{64}", seed)


def test_inline_seed_is_used_lowercased_and_auth_keys_rendered() -> None:
    release = template({"helm.signing.key": SEED.upper()}, PRODUCTION)
    assert _data(release, "helm-ai-kernel-signing")["signing-key"] == SEED
    assert _data(release, "helm-ai-kernel-auth") == {
        "HELM_ADMIN_API_KEY": "smoke-admin",
        "HELM_SERVICE_API_KEY": "smoke-service",
    }


def test_existing_secrets_render_no_key_material() -> None:
    release = template(
        {
            "helm.signing.existingSecret": "s",
            "helm.auth.existingSecret": "a",
            "helm.production": True,
            "helm.proxy.upstream": "https://llm.example.internal/v1",
        }
    )
    assert not release.has("Secret")


def test_controlplane_bearer_token_secret() -> None:
    release = template({"helm.policy.source.kind": "controlplane", "helm.policy.source.controlplane.url": "https://cp",
                        "helm.policy.source.controlplane.auth.mode": "bearerToken",
                        "helm.policy.source.controlplane.auth.bearerToken": "tok"})  # fmt: skip
    assert _data(release, "helm-ai-kernel-policy-controlplane") == {
        "HELM_POLICY_BEARER_TOKEN": "tok"
    }
