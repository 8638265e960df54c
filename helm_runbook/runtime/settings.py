"""Every environment variable the runtime reads, in one place (docs/upstream-contract.md#environment).

Secrets are held as ``starlette.datastructures.Secret`` so a repr or log line never shows them.
Variables the chart sets that upstream's serve path ignores (docs/upstream-contract.md#d7: ``HELM_REGION``,
``HELM_SIGNING_ALGORITHM``, ``HELM_DEMO_MODE``, ``HELM_POLICY_RELOAD_ENDPOINT``, the
``HELM_AGENT_SAFETY_*`` flags, …) are accepted and ignored here too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import Secret

from helm_runbook.runtime.limits import LimitSettings

_TRUE = frozenset({"1", "true", "TRUE", "True", "yes", "YES"})
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class SettingsError(Exception):
    """An environment variable has a value the runtime refuses; the message names it."""


def parse_duration(text: str) -> float:
    """Seconds from a Go duration string such as ``10s``, ``1m30s`` or ``500ms``."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r} (expected Go syntax like 10s, 1m30s)")
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    return sign * total


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name)
    return default if value is None or value == "" else value in _TRUE


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SettingsError(f"{name}={raw!r} must be a port number in 1..65535")
    return int(raw)


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "")
    return Secret(value) if value else None


@dataclass(frozen=True)
class PolicySettings:
    source_kind: str = "mountedFile"
    poll_interval_s: float = 10.0
    initial_reconcile_timeout_s: float = 30.0
    on_invalid_update: str = "keepLastKnownGood"
    last_known_good_max_age_s: float = 600.0
    signature_required: bool = False
    trust_public_key: str = ""
    controlplane_url: str = ""
    bearer_token: Secret | None = None
    crd_api_group: str = "policy.helm.ai"
    crd_resource: str = "HelmPolicyBundle"
    crd_namespace: str = ""


@dataclass(frozen=True)
class Settings:
    """What ``helm-ai-kernel serve`` runs with: CLI flags plus environment."""

    policy_path: Path
    addr: str = "127.0.0.1"
    port: int = 7714
    data_dir: Path = Path("data")
    health_port: int = 8081
    metrics_enabled: bool = False
    metrics_port: int = 8081
    production: bool = False
    admin_api_key: Secret | None = None
    service_api_key: Secret | None = None
    tenant_id: str = "default"
    principal_id: str = "system-admin"
    workspace_id: str = ""
    evidence_signing_key: Secret | None = None
    database_url: Secret | None = None
    db: DatabasePoolSettings = field(default_factory=lambda: DatabasePoolSettings())
    sqlite_synchronous: str = "NORMAL"
    upstream_url: str = ""
    openai_proxy_enabled: bool = False
    log_format: str = "json"
    deployment_id: str = ""
    limits: LimitSettings = field(default_factory=LimitSettings)
    upstream_timeout_s: float = 120.0
    policy: PolicySettings = field(default_factory=PolicySettings)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "helm.db"

    @classmethod
    def from_env(
        cls,
        *,
        policy_path: Path,
        addr: str,
        port: int,
        data_dir: Path,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read the environment; raise SettingsError naming the first bad variable."""
        env = os.environ if environ is None else environ
        log_format = env.get("HELM_LOG_FORMAT", "") or "json"
        if log_format not in ("json", "text"):
            raise SettingsError(f"HELM_LOG_FORMAT={log_format!r} must be json or text")
        synchronous = (env.get("HELM_SQLITE_SYNCHRONOUS", "") or "NORMAL").upper()
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise SettingsError(
                f"HELM_SQLITE_SYNCHRONOUS={synchronous!r} must be NORMAL, FULL or EXTRA"
            )
        health_port = _port(env, "HELM_HEALTH_PORT", 8081)
        return cls(
            policy_path=policy_path,
            addr=addr,
            port=port,
            data_dir=data_dir,
            health_port=health_port,
            metrics_enabled=_flag(env, "HELM_METRICS_ENABLED"),
            metrics_port=_port(env, "HELM_METRICS_PORT", health_port),
            production=_flag(env, "HELM_PRODUCTION"),
            admin_api_key=_secret(env, "HELM_ADMIN_API_KEY"),
            service_api_key=_secret(env, "HELM_SERVICE_API_KEY"),
            tenant_id=env.get("HELM_RUNTIME_TENANT_ID", "") or "default",
            principal_id=env.get("HELM_RUNTIME_PRINCIPAL_ID", "") or "system-admin",
            workspace_id=env.get("HELM_RUNTIME_WORKSPACE_ID", ""),
            evidence_signing_key=_secret(env, "EVIDENCE_SIGNING_KEY"),
            database_url=_secret(env, "DATABASE_URL"),
            db=_db_settings(env),
            sqlite_synchronous=synchronous,
            upstream_url=env.get("HELM_UPSTREAM_URL", ""),
            openai_proxy_enabled=_flag(env, "HELM_ENABLE_OPENAI_PROXY"),
            log_format=log_format,
            deployment_id=env.get("HELM_DEPLOYMENT_ID", ""),
            limits=_limit_settings(env),
            policy=_policy_settings(env),
        )


@dataclass(frozen=True)
class DatabasePoolSettings:
    """PostgreSQL pool sizes (``HELM_DB_*``, helm.storage.postgres.*; upstream's Go defaults)."""

    max_open_conns: int = 25
    max_idle_conns: int = 10
    conn_max_lifetime_s: float = 1800.0


def _db_settings(env: Mapping[str, str]) -> DatabasePoolSettings:
    def count(name: str, default: int) -> int:
        raw = env.get(name, "")
        if not raw:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError(f"{name}={raw!r} must be a whole number of connections, 1 or more")
        return int(raw)

    lifetime_raw = env.get("HELM_DB_CONN_MAX_LIFETIME", "") or "30m"
    try:
        lifetime = parse_duration(lifetime_raw)
    except ValueError as exc:
        raise SettingsError(f"HELM_DB_CONN_MAX_LIFETIME: {exc}") from exc
    if lifetime <= 0:
        raise SettingsError(
            f"HELM_DB_CONN_MAX_LIFETIME={lifetime_raw!r} must be positive (e.g. 30m)"
        )
    max_open = count("HELM_DB_MAX_OPEN_CONNS", 25)
    return DatabasePoolSettings(
        max_open, min(count("HELM_DB_MAX_IDLE_CONNS", 10), max_open), lifetime
    )


def _limit_settings(env: Mapping[str, str]) -> LimitSettings:
    """``HELM_LIMIT_*`` and ``HELM_CONCURRENCY_MAX`` (unset or 0 disables a limit), the read
    deadlines ``HELM_HTTP_HEADER_TIMEOUT`` / ``HELM_HTTP_BODY_TIMEOUT``, and the aggregate
    budgets ``HELM_BODY_BUDGET_BYTES`` / ``HELM_ANONYMOUS_RECEIPTS_PER_MINUTE[_TOTAL]``."""

    def number(name: str) -> float:
        raw = env.get(name, "")
        if not raw:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} must be a non-negative number") from None
        if value < 0:
            raise SettingsError(f"{name}={raw!r} must be a non-negative number")
        return value

    def count(name: str, default: int) -> int:
        raw = env.get(name, "")
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit()):
            raise SettingsError(f"{name}={raw!r} must be a whole number, 0 or more (0 disables)")
        return int(raw)

    def seconds(name: str, default: float) -> float:
        raw = env.get(name, "")
        try:
            value = parse_duration(raw) if raw else default
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from exc
        if value <= 0:
            raise SettingsError(f"{name}={raw!r} must be a positive duration such as 10s")
        return value

    return LimitSettings(
        global_rps=number("HELM_LIMIT_GLOBAL_RPS"),
        global_burst=int(number("HELM_LIMIT_GLOBAL_BURST")),
        actor_rps=number("HELM_LIMIT_ACTOR_RPS"),
        actor_burst=int(number("HELM_LIMIT_ACTOR_BURST")),
        concurrency_max=int(number("HELM_CONCURRENCY_MAX")),
        header_timeout_s=seconds("HELM_HTTP_HEADER_TIMEOUT", 10.0),
        body_timeout_s=seconds("HELM_HTTP_BODY_TIMEOUT", 30.0),
        body_budget_bytes=count("HELM_BODY_BUDGET_BYTES", 48 << 20),
        anonymous_receipts_per_minute=count("HELM_ANONYMOUS_RECEIPTS_PER_MINUTE", 600),
        anonymous_receipts_per_minute_total=count("HELM_ANONYMOUS_RECEIPTS_PER_MINUTE_TOTAL", 3000),
    )


def _policy_settings(env: Mapping[str, str]) -> PolicySettings:
    kind_raw = env.get("HELM_POLICY_SOURCE_KIND", "") or "mountedFile"
    kinds = {
        "mountedfile": "mountedFile",
        "mounted-file": "mountedFile",
        "mounted_file": "mountedFile",
        "controlplane": "controlplane",
        "crd": "crd",
    }
    kind = kinds.get(kind_raw.lower())
    if kind is None:
        raise SettingsError(
            f"HELM_POLICY_SOURCE_KIND={kind_raw!r} must be mountedFile, controlplane or crd"
        )

    def duration(name: str, default: float, *, strict: bool) -> float:
        raw = env.get(name, "")
        if not raw:
            return default
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            if strict:
                raise SettingsError(f"{name}: {exc}") from exc
            return default  # upstream: an invalid poll interval falls back to the default
        if value <= 0:
            if strict:
                raise SettingsError(f"{name}={raw!r} must be a positive duration")
            return default
        return value

    on_invalid = env.get("HELM_POLICY_ON_INVALID_UPDATE", "") or "keepLastKnownGood"
    if on_invalid not in ("keepLastKnownGood", "deny"):
        raise SettingsError(
            f"HELM_POLICY_ON_INVALID_UPDATE={on_invalid!r} must be keepLastKnownGood or deny"
        )
    trust = env.get("HELM_POLICY_TRUST_PUBLIC_KEY", "").strip()
    if trust and not re.fullmatch(r"[0-9a-fA-F]{64}", trust):
        raise SettingsError(
            "HELM_POLICY_TRUST_PUBLIC_KEY must be a 64-character hex Ed25519 public key"
        )
    required = _flag(env, "HELM_POLICY_SIGNATURE_REQUIRED")
    controlplane_url = env.get("HELM_POLICY_CONTROLPLANE_URL", "")
    if kind == "controlplane":
        if not controlplane_url:
            raise SettingsError(
                "HELM_POLICY_SOURCE_KIND=controlplane requires HELM_POLICY_CONTROLPLANE_URL "
                "(helm.policy.source.controlplane.url)"
            )
        if not required:
            raise SettingsError(
                "HELM_POLICY_SOURCE_KIND=controlplane requires HELM_POLICY_SIGNATURE_REQUIRED=true "
                "(helm.policy.signature.required=true)"
            )
    if required and not trust:
        raise SettingsError(
            "HELM_POLICY_SIGNATURE_REQUIRED=true requires HELM_POLICY_TRUST_PUBLIC_KEY "
            "(set helm.policy.signature.publicKey or helm.policy.signature.existingSecret)"
        )
    return PolicySettings(
        source_kind=kind,
        poll_interval_s=duration("HELM_POLICY_POLL_INTERVAL", 10.0, strict=False),
        initial_reconcile_timeout_s=duration(
            "HELM_POLICY_INITIAL_RECONCILE_TIMEOUT", 30.0, strict=True
        ),
        on_invalid_update=on_invalid,
        last_known_good_max_age_s=duration(
            "HELM_POLICY_LAST_KNOWN_GOOD_MAX_AGE", 600.0, strict=True
        ),
        signature_required=required,
        trust_public_key=trust.lower(),
        controlplane_url=controlplane_url,
        crd_api_group=env.get("HELM_POLICY_CRD_API_GROUP", "") or "policy.helm.ai",
        crd_resource=env.get("HELM_POLICY_CRD_RESOURCE", "") or "HelmPolicyBundle",
        crd_namespace=env.get("HELM_POLICY_CRD_NAMESPACE", "") or env.get("POD_NAMESPACE", ""),
        bearer_token=_secret(env, "HELM_POLICY_BEARER_TOKEN"),
    )
