"""Chart steps: lint, render + strict schema validation, and the demo of a refused render."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.guide import guide_commands, set_flags
from helm_runbook.chart.manifests import validate
from helm_runbook.chart.sdk import lint, render, set_values
from helm_runbook.chart.values import helm_command
from helm_runbook.errors import ChartError, StepFailed
from helm_runbook.harness.record import record
from helm_runbook.harness.results import StepReport


def _shown_chart(chart: Path) -> str:
    """The chart as a command shows it: relative to the checkout (never this machine's path)."""
    return "deploy/helm-chart" if chart == CHART_DIR else chart.name


def lint_chart(chart: Path = CHART_DIR, values: dict[str, Any] | None = None) -> StepReport:
    """``helm lint --strict``: Helm's own linter through its Go SDK."""
    start = time.perf_counter()
    report = lint(chart, values)
    if not report.ok:
        raise StepFailed("chart.lint", expected="helm lint reports no errors", seen="; ".join(report.errors),
                         fix="fix the template or values Helm names")  # fmt: skip
    rows: list[list[object]] = [[sev, path, text] for sev, path, text in report.messages]
    result = StepReport("chart.lint", f"helm lint {chart.name}", ["severity", "path", "message"], rows,
                        summary=f"0 errors, {len(rows)} informational", seconds=time.perf_counter() - start,
                        command=f"helm lint {_shown_chart(chart)} --strict", values={"errors": 0, "messages": len(rows)})  # fmt: skip
    record(result)
    return result


def render_release(
    values: dict[str, Any] | None = None, *, release: str = "helm-ai-kernel", namespace: str = "default",
    kube_version: str = "1.31.0", chart: Path = CHART_DIR,
) -> StepReport:  # fmt: skip
    """``helm template`` plus strict validation against the Kubernetes OpenAPI schemas."""
    start = time.perf_counter()
    rendered = render(chart, values, release=release, namespace=namespace)
    report = validate(rendered, kube_version)
    if not report.ok:
        raise StepFailed("chart.render", expected=f"every object valid for Kubernetes {kube_version}",
                         seen="; ".join(f"{n}: {m}" for n, m in report.failed),
                         fix="correct the values or template producing that field")  # fmt: skip
    status = {name: "valid" for name in report.checked} | {
        name: "unchecked (no schema)" for name in report.unchecked
    }
    rows: list[list[object]] = [[obj["kind"], obj["metadata"]["name"], status[f"{obj['kind']}/{obj['metadata']['name']}"]]
                                for _, obj in rendered.objects]  # fmt: skip
    result = StepReport("chart.render", f"helm template {release}", ["kind", "name", "schema"], rows,
                        summary=f"{len(report.checked)} valid, {len(report.unchecked)} unchecked",
                        seconds=time.perf_counter() - start,
                        command=helm_command(values or {}, release=release, namespace=namespace, chart=_shown_chart(chart))
                        .replace("helm upgrade --install ", "helm template ", 1) + f" \\\n  --kube-version {kube_version}",
                        values={"kinds": sorted(set(rendered.kinds())), "valid": len(report.checked),
                                "unchecked": report.unchecked})  # fmt: skip
    record(result)
    return result


def expect_refusal(
    action: Callable[..., Any], *args: Any, match: str, step: str = "chart.refusal", **kwargs: Any
) -> StepReport:
    """Run ``action`` and require that it is refused with a message containing ``match``.

    papermill fails on any error output (it ignores ``raises-exception``), so a demo of a refusal
    catches and asserts it here; a render that goes through fails the notebook instead.
    """
    start = time.perf_counter()
    try:
        action(*args, **kwargs)
    except (ChartError, StepFailed) as exc:
        if match not in str(exc):
            raise StepFailed(step, expected=f"refusal mentioning {match!r}", seen=str(exc)[:400],
                             fix="the guard's message changed: update runbook 01-chart-lint's expectation or the chart") from exc  # fmt: skip
        lines = [line for line in getattr(exc, "message", str(exc)).split("; ") if line]
        result = StepReport(step, "refused as expected", ["refusal"], [[line] for line in lines],
                            summary=f"matched {match!r}", seconds=time.perf_counter() - start,
                            values={"match": match, "refusals": lines})  # fmt: skip
        record(result)
        return result
    raise StepFailed(step, expected=f"a refusal mentioning {match!r}", seen="it went through",
                     fix="a production render without key material must fail: check templates/_validate.tpl")  # fmt: skip


def chart_smoke() -> StepReport:
    """``make helm-chart-smoke``: lint both modes, render every ci/ scenario strictly, and see every
    guard refuse with its message."""
    from helm_runbook.chart.smoke import run

    start = time.perf_counter()
    result = run()
    failed = [row for row in result.rows if row[1] != "PASS"]
    if failed:
        raise StepFailed("chart.smoke", expected="every smoke check passes", seen=str(failed[0]),
                         fix="make helm-chart-smoke prints every check; fix the template or guard it names")  # fmt: skip
    report = StepReport("chart.smoke", "make helm-chart-smoke", ["check", "result", "detail"], result.rows,
                        summary=f"{len(result.rows)} checks passed", seconds=time.perf_counter() - start,
                        command="make helm-chart-smoke", values={"checks": len(result.rows)})  # fmt: skip
    record(report)
    return report


#: What a guide command's placeholders stand for when it is rendered as written: fresh key
#: material of the right form (never shown; the recorded command keeps the placeholders).
_PLACEHOLDER_VALUES: dict[str, Callable[[], str]] = {
    "<64-char-ed25519-seed-hex>": lambda: secrets.token_hex(32),
    "<64-char-ed25519-public-key-hex>": lambda: secrets.token_hex(32),
    "<admin-api-key>": lambda: secrets.token_urlsafe(24),
    "<service-api-key>": lambda: secrets.token_urlsafe(24),
}


def render_guide_command(section: str) -> StepReport:
    """The deployment guide's ``helm install`` of ``section``, rendered exactly as written (its
    ``--set`` flags through Helm's own parser, placeholders filled with fresh key material):
    the chart's guards let it through, and NOTES says what the operator still has to set."""
    start = time.perf_counter()
    matching = [
        c for c in guide_commands() if c.section == section and c.command.startswith("helm ")
    ]
    if not matching:
        raise StepFailed("chart.guide", expected=f"a helm command in the guide's section {section!r}",
                         seen="none in docs/guide-commands.yaml", fix="name a section of the guide's install skeletons")  # fmt: skip
    command = matching[0].command
    expressions = []
    for key, value in set_flags(command):
        for placeholder, make in _PLACEHOLDER_VALUES.items():
            value = value.replace(placeholder, make())
        expressions.append(f"{key}={value}")
    words = [w for w in command.split() if w not in ("helm", "install", "upgrade", "--install")]
    release, chart = (
        words[0],
        words[1],
    )  # `helm install RELEASE CHART` / `helm upgrade --install ...`
    try:
        rendered = render(CHART_DIR, set_values(*expressions), release=release)
    except ChartError as exc:
        raise StepFailed("chart.guide", expected=f"the guide's {section} renders as written",
                         seen=exc.message, fix=exc.fix) from exc  # fmt: skip
    env = {
        e["name"]: e.get("value")
        for e in rendered.get("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    warnings = [
        line.split(" Set it with")[0].strip()
        for line in rendered.notes.splitlines()
        if line.startswith("WARNING")
    ]
    rows: list[list[object]] = [
        ["chart", chart],
        ["flags", ", ".join(key for key, _ in set_flags(command))],
        ["guards", "passed: the render was not refused"],
        ["HELM_PRODUCTION", env.get("HELM_PRODUCTION")],
        ["objects", ", ".join(sorted(set(rendered.kinds()) - {"Pod"}))],
    ]
    rows += [["NOTES", w] for w in warnings]
    result = StepReport("chart.guide", f"the guide's {section}, rendered as written", ["what", "value"], rows,
                        summary="renders: every guard passed" + (f"; NOTES: {len(warnings)} warning(s)" if warnings else ""),
                        seconds=time.perf_counter() - start, command=command,
                        values={"section": section, "command": command, "production": env.get("HELM_PRODUCTION") == "1",
                                "kinds": sorted(set(rendered.kinds())), "notes_warnings": warnings})  # fmt: skip
    record(result)
    return result
