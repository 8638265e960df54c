"""What a run shows on the site: the results page (one line per recorded step) and the banner
on top of each executed runbook."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.site.markup import identifier, md_text, status_mark


def chart_versions() -> dict[str, str]:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    return {"chart": str(chart["version"]), "app": str(chart["appVersion"])}


def results_page(report: Mapping[str, Any]) -> str:
    """One line per recorded runbook step, from ``build/runbook-report.json``: a table per
    runbook, so a phone lays out only the tables near the window (one table of every step was
    0.4 s of blocking script and layout on Lighthouse's phone)."""
    sections = []
    for entry in report.get("notebooks", []):
        rows = ["| Cell | Step | Status | Duration |", "| --- | --- | --- | --- |"]
        for step in entry.get("steps", []):
            skipped = (step.get("values") or {}).get("skipped")
            status = (status_mark("skipped", f"skipped: {md_text(skipped)}") if skipped
                      else status_mark("passed") if step.get("ok", True) else status_mark("failed"))  # fmt: skip
            rows.append(
                f"| {md_text(step['cell'])} | {identifier(str(step['step']))} | {status} | {step['seconds']:.2f} s |"
            )
        if entry.get("failure"):
            f = entry["failure"]
            rows.append(
                f"| {md_text(f['cell'])} | {md_text(f['error'])} | {status_mark('failed')} | — |"
            )
        body = "\n".join(rows) if len(rows) > 2 else "No step recorded."
        sections.append(f"### {md_text(entry['notebook'])}\n\n{body}\n")
    meta = report.get("run", {})
    head = (
        f"Executed {md_text(meta.get('finished', '?'))} against target "
        f"<code>{md_text(meta.get('target', '?'))}</code>, runtime "
        f"{md_text(meta.get('runtime_version', '?'))}, chart {md_text(meta.get('chart_version', '?'))}.\n\n"
        if meta
        else ""
    )
    totals = "".join(
        f"| {md_text(e['notebook'])} | {status_mark('passed') if e['status'] == 'passed' else status_mark('failed', md_text(e['status']))} | {len(e.get('steps', []))} | {e['duration_s']:.1f} s |\n"
        for e in report.get("notebooks", [])
    )
    return (
        "# Results\n\nEvery step the runbooks recorded when this site was built.\n\n"
        + head
        + "| Runbook | Status | Steps | Duration |\n| --- | --- | --- | --- |\n"
        + totals
        + "\n## Steps\n\n"
        + "\n".join(sections)
    )


def banner_html(entry: Mapping[str, Any], run: Mapping[str, Any], download: str = "") -> str:
    """The banner on top of an executed runbook: when, against what, whether every step passed,
    and (``download``: the clean notebook's URL relative to the page) how to run it yourself."""
    steps = entry.get("steps", [])
    passed = entry.get("status") == "passed" and all(s.get("ok", True) for s in steps)
    skipped = sum(1 for s in steps if (s.get("values") or {}).get("skipped"))
    ran = f"all {len(steps)} steps passed" if not skipped else (
        f"{len(steps) - skipped} steps passed, {skipped} skipped on this target (each says why)")  # fmt: skip
    kind, verdict = ("success", ran) if passed else ("failure", "a step failed")
    text = (
        f"Executed {html.escape(str(run.get('finished', '?')))} against the <code>{html.escape(str(run.get('target', '?')))}</code> "
        f"target: runtime {html.escape(str(run.get('runtime_version', '?')))}, chart "
        f"{html.escape(str(run.get('chart_version', '?')))}, {entry.get('duration_s', 0):.1f} s — {verdict}."
    )
    yourself = (
        f'<p>Run it yourself: <a href="{html.escape(download)}" download>download the notebook</a> '
        "(without outputs), or open it from <code>notebooks/</code> with <code>make lab</code> "
        "(JupyterLab on 127.0.0.1, kernel <code>helm-runbook</code>).</p>"
        if download
        else ""
    )
    return (
        f'<div class="admonition {kind} helm-runbook-banner"><p class="admonition-title">'
        f"{'Verified run' if passed else 'Failed run'}</p><p>{text}</p>{yourself}</div>"
    )


def add_banner(
    notebook: Path, entry: Mapping[str, Any], run: Mapping[str, Any], download: str = ""
) -> None:
    """Insert the banner as the first cell of an executed copy (the site's copy, not papermill's)."""
    doc = json.loads(notebook.read_text())
    cell = {
        "cell_type": "markdown",
        "id": "helm-runbook-banner",
        "metadata": {"tags": ["helm-runbook-banner"]},
        "source": banner_html(entry, run, download),
    }
    doc["cells"].insert(0, cell)
    notebook.write_text(json.dumps(doc, indent=1))
