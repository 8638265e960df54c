"""The generated pages written into the site's source tree: the reference pages, the results
page, the guide-coverage page and the overview's topology picture."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helm_runbook.site.coverage import Coverage, guide_coverage
from helm_runbook.site.envpage import env_page
from helm_runbook.site.markup import status_mark
from helm_runbook.site.reference import guards_page, routes_page, values_page
from helm_runbook.site.results import results_page

REFERENCE_PAGES = {
    "reference/values.md": values_page,
    "reference/environment.md": env_page,
    "reference/routes.md": routes_page,
    "reference/guards.md": guards_page,
}


def reference_pages() -> dict[str, str]:
    """The pages that depend on the chart and the runtime only, not on a run: the reference
    pages and the overview's picture (about 4 s of chart renders, so the runner may compute
    them while its last runbook executes)."""
    pages = {relative: page() for relative, page in REFERENCE_PAGES.items()}
    return {**pages, TOPOLOGY: overview_topology()}


TOPOLOGY = "topology.svg"  # the overview's picture, inlined where docs/index.md shows it


def write_generated_pages(
    site_src: Path, report: Mapping[str, Any], reference: Mapping[str, str] | None = None
) -> list[Path]:
    """Write the reference pages (``reference``, else computed now) and the pages of this run's
    results into the site's source tree."""
    written = []
    for relative, text in (reference_pages() if reference is None else reference).items():
        path = site_src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    results = site_src / "results.md"
    results.write_text(results_page(report))
    written.append(results)
    coverage = guide_coverage(report)
    coverage_md = site_src / "guide-coverage.md"
    coverage_md.write_text(coverage_page(coverage))
    written.append(coverage_md)
    overview = site_src / "index.md"
    picture = site_src / TOPOLOGY
    if overview.exists() and picture.exists():
        from helm_runbook.site.topology import topology_figure

        figure = topology_figure(picture.read_text())
        picture.unlink()  # inlined: the page carries it, with its <title>, as inline SVG
        written.remove(picture)
        overview.write_text(
            re.sub(
                r"^!\[[^\]]*\]\(topology\.svg\)$",
                lambda _: figure,
                overview.read_text(),
                flags=re.M,
            )
        )
    if overview.exists():
        done = sum(item.covered for item in coverage)
        overview.write_text(overview.read_text().rstrip() + f"\n\n**Guide coverage:** {done} of {len(coverage)} shell "
                            "commands of the deployment guide were executed by the runbooks of this build "
                            "([which cell runs each](guide-coverage.md)).\n")  # fmt: skip
    return written


def coverage_page(coverage: list[Coverage]) -> str:
    """Every shell command of the deployment guide, the runbook cell that executed it in this build."""
    done = sum(item.covered for item in coverage)
    lines = ["# Guide coverage", "",
             f"{done} of {len(coverage)} shell commands of the deployment guide were executed by the runbooks "
             "of this build. The list is `docs/guide-commands.yaml` (verbatim from the guide); a command counts "
             "when a step that runs it passed (an install counts when every flag of the guide's command is in "
             "the `helm upgrade --install` it applied; placeholders and the control-plane URL aside).", ""]  # fmt: skip
    section = None
    for item in coverage:
        if item.command.section != section:
            section = item.command.section
            lines += [f"## {section}", ""]
        where = ", ".join(
            f"[{nb}](runbooks/{nb}.ipynb) cell {cell}" for nb, cell in item.executed_in
        )
        status = (status_mark("passed", f"executed by {where}: {item.how()}") if item.covered
                  else status_mark("failed", "not executed by any runbook"))  # fmt: skip
        lines += [
            "```bash",
            item.command.command,
            "```",
            "",
            f"{status} (step `{item.command.step}`)",
            "",
        ]
    return "\n".join(lines)


def overview_topology() -> str:
    """The overview's picture: the chart rendered with every optional path on (metrics, the
    ServiceMonitor, a TLS Ingress, existing Secrets, the policy ConfigMap), drawn from the render."""
    from helm_runbook.chart import CHART_DIR
    from helm_runbook.chart.sdk import render
    from helm_runbook.site.topology import topology_svg

    values = {
        "helm": {"signing": {"existingSecret": "helm-signing"}, "auth": {"existingSecret": "helm-auth"},
                 "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
                 "policy": {"source": {"mountedFile": {"existingConfigMap": "helm-policy"}}}},
        "ingress": {"enabled": True, "tls": [{"secretName": "helm-ingress-tls", "hosts": ["helm.local"]}]},
        "persistence": {"enabled": True},
    }  # fmt: skip
    return topology_svg(render(CHART_DIR, values, release="helm-ai-kernel"))
