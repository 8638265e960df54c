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

if TYPE_CHECKING:
    from helm_runbook.client import Credentials, RuntimeClient
    from helm_runbook.diagnose import Diagnosis, diagnose
    from helm_runbook.process import free_port
    from helm_runbook.results import StepReport, Table
    from helm_runbook.steps import (
        expect_refusal,
        install,
        lint_chart,
        prepare_secrets,
        render_release,
        restart_pod,
        smoke_check,
        uninstall_and_reinstall,
        verify_receipts,
        wait_for_rollout,
    )
    from helm_runbook.steps.observability import (
        burst_figures,
        create_tls_secret,
        governed_burst,
        ingress_check,
        start_prometheus,
        upgrade,
    )
    from helm_runbook.steps.policy import (
        governed_request,
        publish_signed_policy,
        trust_public_key,
        wake_reconcile,
    )
    from helm_runbook.steps.reset import reset_target
    from helm_runbook.steps.troubleshoot import TroubleshootingLab
    from helm_runbook.steps.upstream import start_stand_in_upstream
    from helm_runbook.targets import open_target
    from helm_runbook.targets.base import Target
    from helm_runbook.topology import release_topology

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "Credentials": "helm_runbook.client",
    "Diagnosis": "helm_runbook.diagnose",
    "RuntimeClient": "helm_runbook.client",
    "StepReport": "helm_runbook.results",
    "Table": "helm_runbook.results",
    "Target": "helm_runbook.targets.base",
    "TroubleshootingLab": "helm_runbook.steps.troubleshoot",
    "burst_figures": "helm_runbook.steps.observability",
    "create_tls_secret": "helm_runbook.steps.observability",
    "diagnose": "helm_runbook.diagnose",
    "expect_refusal": "helm_runbook.steps",
    "free_port": "helm_runbook.process",
    "governed_burst": "helm_runbook.steps.observability",
    "governed_request": "helm_runbook.steps.policy",
    "ingress_check": "helm_runbook.steps.observability",
    "install": "helm_runbook.steps",
    "lint_chart": "helm_runbook.steps",
    "open_target": "helm_runbook.targets",
    "prepare_secrets": "helm_runbook.steps",
    "publish_signed_policy": "helm_runbook.steps.policy",
    "render_release": "helm_runbook.steps",
    "release_topology": "helm_runbook.topology",
    "reset_target": "helm_runbook.steps.reset",
    "restart_pod": "helm_runbook.steps",
    "smoke_check": "helm_runbook.steps",
    "start_prometheus": "helm_runbook.steps.observability",
    "start_stand_in_upstream": "helm_runbook.steps.upstream",
    "trust_public_key": "helm_runbook.steps.policy",
    "uninstall_and_reinstall": "helm_runbook.steps",
    "upgrade": "helm_runbook.steps.observability",
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
    "ChartError",
    "Credentials",
    "Diagnosis",
    "InputError",
    "ReceiptInvalid",
    "RenderError",
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
    "burst_figures",
    "create_tls_secret",
    "diagnose",
    "expect_refusal",
    "free_port",
    "governed_burst",
    "governed_request",
    "ingress_check",
    "install",
    "lint_chart",
    "open_target",
    "prepare_secrets",
    "publish_signed_policy",
    "release_topology",
    "render_release",
    "reset_target",
    "restart_pod",
    "smoke_check",
    "start_prometheus",
    "start_stand_in_upstream",
    "trust_public_key",
    "uninstall_and_reinstall",
    "upgrade",
    "verify_receipts",
    "wait_for_rollout",
    "wake_reconcile",
]
