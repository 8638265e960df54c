"""helm-runbook: executable runbooks and a reference runtime for the HELM AI Kernel chart.

The names below are the public API: what the runbooks import (``from helm_runbook import ...``)
and what an operator uses in JupyterLab. They load on first use, so ``helm-runbook --version``
and the runtime never pay for the chart SDK or the Kubernetes client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from helm_runbook.errors import (
    ChartError,
    InputError,
    ReceiptInvalid,
    RenderError,
    RunbookError,
    RuntimeAPIError,
    SecretMaterialMissing,
    StepFailed,
    TargetUnavailable,
    ValuesError,
    VerificationFailed,
)
from helm_runbook.harness import record as _record  # noqa: F401  (a failed step records itself in its cell)
from helm_runbook.imports import skip_httpx_cli

skip_httpx_cli()  # before anything loads httpx: 0.13 s of every kernel and runtime (helm_runbook/imports.py)

if TYPE_CHECKING:
    from helm_runbook.harness.results import StepReport, Table
    from helm_runbook.standins.process import free_port
    from helm_runbook.steps import (
        chart_smoke,
        expect_refusal,
        install,
        lint_chart,
        prepare_secrets,
        render_guide_command,
        render_release,
        restart_pod,
        running_pod,
        smoke_check,
        uninstall_and_reinstall,
        verify_receipts,
        wait_for_rollout,
    )
    from helm_runbook.steps.controlplane import (
        await_verdict,
        create_trust_secret,
        publish_version,
        rotate_control_plane_token,
        set_control_plane_down,
        start_control_plane,
    )
    from helm_runbook.steps.observability import (
        burst_figures,
        create_tls_secret,
        governed_burst,
        ingress_check,
        prometheus_scrapes,
        start_prometheus,
        upgrade_reusing_values,
    )
    from helm_runbook.steps.policy import (
        governed_request,
        publish_signed_policy,
        trust_public_key,
        wake_reconcile,
    )
    from helm_runbook.steps.presets import (
        HOSTNAME_ARGS,
        READ_HOSTNAME,
        STAND_IN_MODELS,
        chat_rule,
        controlplane_values,
        inline_production_values,
        production_values,
        profile_values,
    )
    from helm_runbook.steps.profile import RunProfile, load_profile, use_profile
    from helm_runbook.steps.release import (
        deployed_values,
        diff_upgrade,
        history,
        receipts_kept,
        rollback,
        signing_key_continuity,
        start_traffic,
        upgrade,
    )
    from helm_runbook.steps.reset import reset_target
    from helm_runbook.steps.troubleshoot import TroubleshootingLab
    from helm_runbook.steps.upstream import start_stand_in_upstream
    from helm_runbook.targets import open_target
    from helm_runbook.targets.base import Target
    from helm_runbook.tools.client import Credentials, RuntimeClient
    from helm_runbook.tools.diagnose import Diagnosis, diagnose

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "deployed_values": "helm_runbook.steps.release",
    "diff_upgrade": "helm_runbook.steps.release",
    "history": "helm_runbook.steps.release",
    "receipts_kept": "helm_runbook.steps.release",
    "rollback": "helm_runbook.steps.release",
    "signing_key_continuity": "helm_runbook.steps.release",
    "start_traffic": "helm_runbook.steps.release",
    "upgrade": "helm_runbook.steps.release",
    "await_verdict": "helm_runbook.steps.controlplane",
    "create_trust_secret": "helm_runbook.steps.controlplane",
    "publish_version": "helm_runbook.steps.controlplane",
    "rotate_control_plane_token": "helm_runbook.steps.controlplane",
    "set_control_plane_down": "helm_runbook.steps.controlplane",
    "start_control_plane": "helm_runbook.steps.controlplane",
    "Credentials": "helm_runbook.tools.client",
    "HOSTNAME_ARGS": "helm_runbook.steps.presets",
    "READ_HOSTNAME": "helm_runbook.steps.presets",
    "STAND_IN_MODELS": "helm_runbook.steps.presets",
    "chat_rule": "helm_runbook.steps.presets",
    "controlplane_values": "helm_runbook.steps.presets",
    "profile_values": "helm_runbook.steps.presets",
    "RunProfile": "helm_runbook.steps.profile",
    "load_profile": "helm_runbook.steps.profile",
    "use_profile": "helm_runbook.steps.profile",
    "Diagnosis": "helm_runbook.tools.diagnose",
    "RuntimeClient": "helm_runbook.tools.client",
    "StepReport": "helm_runbook.harness.results",
    "Table": "helm_runbook.harness.results",
    "Target": "helm_runbook.targets.base",
    "TroubleshootingLab": "helm_runbook.steps.troubleshoot",
    "chart_smoke": "helm_runbook.steps",
    "burst_figures": "helm_runbook.steps.observability",
    "create_tls_secret": "helm_runbook.steps.observability",
    "diagnose": "helm_runbook.tools.diagnose",
    "expect_refusal": "helm_runbook.steps",
    "free_port": "helm_runbook.standins.process",
    "governed_burst": "helm_runbook.steps.observability",
    "governed_request": "helm_runbook.steps.policy",
    "inline_production_values": "helm_runbook.steps.presets",
    "ingress_check": "helm_runbook.steps.observability",
    "install": "helm_runbook.steps",
    "lint_chart": "helm_runbook.steps",
    "open_target": "helm_runbook.targets",
    "prepare_secrets": "helm_runbook.steps",
    "production_values": "helm_runbook.steps.presets",
    "prometheus_scrapes": "helm_runbook.steps.observability",
    "publish_signed_policy": "helm_runbook.steps.policy",
    "render_guide_command": "helm_runbook.steps",
    "render_release": "helm_runbook.steps",
    "release_topology": "helm_runbook.site.topology",
    "reset_target": "helm_runbook.steps.reset",
    "restart_pod": "helm_runbook.steps",
    "running_pod": "helm_runbook.steps",
    "smoke_check": "helm_runbook.steps",
    "start_prometheus": "helm_runbook.steps.observability",
    "start_stand_in_upstream": "helm_runbook.steps.upstream",
    "trust_public_key": "helm_runbook.steps.policy",
    "uninstall_and_reinstall": "helm_runbook.steps",
    "upgrade_reusing_values": "helm_runbook.steps.observability",
    "verify_receipts": "helm_runbook.steps",
    "wait_for_rollout": "helm_runbook.steps",
    "wake_reconcile": "helm_runbook.steps.policy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'helm_runbook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "HOSTNAME_ARGS",
    "READ_HOSTNAME",
    "STAND_IN_MODELS",
    "ChartError",
    "Credentials",
    "Diagnosis",
    "InputError",
    "ReceiptInvalid",
    "RenderError",
    "RunProfile",
    "RunbookError",
    "RuntimeAPIError",
    "RuntimeClient",
    "SecretMaterialMissing",
    "StepFailed",
    "StepReport",
    "Table",
    "Target",
    "TargetUnavailable",
    "TroubleshootingLab",
    "ValuesError",
    "VerificationFailed",
    "__version__",
    "await_verdict",
    "burst_figures",
    "chart_smoke",
    "chat_rule",
    "controlplane_values",
    "create_tls_secret",
    "create_trust_secret",
    "deployed_values",
    "diagnose",
    "diff_upgrade",
    "expect_refusal",
    "free_port",
    "governed_burst",
    "governed_request",
    "history",
    "ingress_check",
    "inline_production_values",
    "install",
    "lint_chart",
    "load_profile",
    "open_target",
    "prepare_secrets",
    "production_values",
    "profile_values",
    "prometheus_scrapes",
    "publish_signed_policy",
    "publish_version",
    "receipts_kept",
    "release_topology",
    "render_guide_command",
    "render_release",
    "reset_target",
    "restart_pod",
    "rollback",
    "rotate_control_plane_token",
    "running_pod",
    "set_control_plane_down",
    "signing_key_continuity",
    "smoke_check",
    "start_control_plane",
    "start_prometheus",
    "start_stand_in_upstream",
    "start_traffic",
    "trust_public_key",
    "uninstall_and_reinstall",
    "upgrade",
    "upgrade_reusing_values",
    "use_profile",
    "verify_receipts",
    "wait_for_rollout",
    "wake_reconcile",
]
