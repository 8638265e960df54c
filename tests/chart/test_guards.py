"""Every guard refuses with its message (helm lint does not evaluate ``fail``: render does)."""

from __future__ import annotations

import pytest

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import render
from helm_runbook.chart.smoke import GUARD_CASES, PRODUCTION, GuardCase
from helm_runbook.errors import ChartError, RenderError


@pytest.mark.parametrize("case", GUARD_CASES, ids=[c.name for c in GUARD_CASES])
def test_guard_refuses_with_its_message(case: GuardCase) -> None:
    with pytest.raises(ChartError) as refused:
        render(CHART_DIR, case.values)
    assert case.message in str(refused.value)
    assert refused.value.fix, "every refusal carries a fix"


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(RenderError) as refused:
        render(CHART_DIR, {"helm": {"production": True}, "replicaCount": 2})
    text = str(refused.value)
    for fragment in (
        "helm.signing.key",
        "helm.auth.adminAPIKey",
        "helm.auth.serviceAPIKey",
        "replicaCount=2",
    ):
        assert fragment in text


def test_production_with_all_material_renders() -> None:
    assert render(CHART_DIR, PRODUCTION).has("Deployment")
