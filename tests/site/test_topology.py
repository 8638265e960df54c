"""The release picture is drawn from the render: other values, another picture."""

from __future__ import annotations

import html
import re
from pathlib import Path

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.sdk import render
from helm_runbook.site.topology import Topology, topology_svg


def test_the_picture_follows_the_values() -> None:
    plain = render(CHART_DIR, {}, release="r")
    full = render(CHART_DIR, {"helm": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
                                       "auth": {"existingSecret": "ops-auth"}},
                              "ingress": {"enabled": True, "tls": [{"secretName": "edge-tls", "hosts": ["helm.local"]}]}},
                  release="r")  # fmt: skip
    edges = {(e.source, e.label, e.target) for e in Topology(full).edges}
    assert (
        "ServiceMonitor/r-helm-ai-kernel",
        "scrapes metrics/metrics",
        "Service/r-helm-ai-kernel",
    ) in edges
    assert ("Ingress/r-helm-ai-kernel", "tls", "Secret/edge-tls") in edges
    assert ("Ingress/r-helm-ai-kernel", "helm.local/ → http", "Service/r-helm-ai-kernel") in edges
    assert (
        "Service/r-helm-ai-kernel",
        "selects (http, health, metrics)",
        "Deployment/r-helm-ai-kernel",
    ) in edges
    assert any(t == "Secret/ops-auth" and label.startswith("env ") for _, label, t in edges)
    assert "Ingress" not in {n.split("/")[0] for n in Topology(plain).nodes}
    svg, other = topology_svg(full), topology_svg(plain)
    assert svg != other and svg.startswith("<svg") and "<script" not in svg and "http://" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # fmt: skip
    assert 'stroke-dasharray="5,2"' in svg  # edge-tls and ops-auth exist outside the release


def test_the_picture_is_laid_out_by_graphviz_named_and_without_overlaps() -> None:
    """Graphviz places every box and label: no two texts overlap (their boxes estimated from the
    font size), every text is at least 12 units, and a screen reader hears what it shows."""
    release = render(CHART_DIR, {"helm": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}},
                                 "ingress": {"enabled": True, "tls": [{"secretName": "t", "hosts": ["h.local"]}]}},
                     release="r")  # fmt: skip
    svg = topology_svg(release)
    title = re.search(
        r'<svg role="img" aria-labelledby="([^"]+)"[^>]*>\s*<title id="\1">([^<]+)</title>', svg
    )
    assert title and "objects and" in title.group(2)
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "\n\n" not in svg
    boxes = []
    for m in re.finditer(
        r'<text text-anchor="(\w+)" x="([\d.-]+)" y="([\d.-]+)"[^>]*font-size="([\d.]+)"[^>]*>(.*?)</text>',
        svg,
    ):
        anchor, x, y, size, text = (
            m.group(1),
            float(m.group(2)),
            float(m.group(3)),
            float(m.group(4)),
            html.unescape(re.sub("<[^>]+>", "", m.group(5))),
        )
        assert size >= 12, text
        width = 0.5 * size * len(text)  # Helvetica averages about half its size per character
        left = x - width / 2 if anchor == "middle" else x - width if anchor == "end" else x
        boxes.append((text, left, y - size * 0.8, left + width, y + size * 0.2))
    assert len(boxes) >= 2 * len(Topology(release).nodes)
    overlaps = [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]  # fmt: skip
    assert overlaps == []


def test_the_notebook_shows_the_picture_inline() -> None:
    picture = Topology(render(CHART_DIR, {}, release="r"))
    figure = picture._repr_html_()
    assert (
        figure.startswith('<figure class="helm-topology"')
        and "<svg" in figure
        and "<img" not in figure
    )


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_colour_of_the_picture_has_a_dark_scheme_counterpart() -> None:
    """In the site's dark scheme each colour Graphviz writes is replaced (docs/stylesheets/layout.css):
    a fill by a dark one under light text, an edge label by a light one; all at 4.5:1 or more. A
    new kind's colour without its dark rule would leave a light box (or dark text) on a dark page."""
    full = render(CHART_DIR, {"helm": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
                                       "auth": {"existingSecret": "ops-auth"}},
                              "ingress": {"enabled": True, "tls": [{"secretName": "edge-tls", "hosts": ["helm.local"]}]}},
                  release="r")  # fmt: skip
    svg = topology_svg(full)
    css = (Path(__file__).resolve().parents[2] / "docs" / "stylesheets" / "layout.css").read_text()
    dark = '[data-md-color-scheme="slate"] .helm-topology'
    rules = dict(re.findall(re.escape(dark) + r' [^{]*?\[(?:fill|stroke)="(#\w+)"\]\s*\{\s*(?:fill|stroke):\s*(#\w+)', css))  # fmt: skip
    node_text = re.search(re.escape(dark) + r"\s*\{\s*--helm-topology-text:\s*(#\w+)", css)
    assert node_text and re.search(re.escape(dark) + r" \.node text\s*\{\s*fill: var\(--helm-topology-text\)", css)  # fmt: skip
    page = "#1e2129"  # the dark scheme's page background (mkdocs-material's slate)
    fills = set(re.findall(r'<path [^>]*fill="(#\w+)"', svg)) - {"none"}
    assert {"#ddf4ff", "#dafbe1", "#fff8c5", "#ffebe9", "#eaeef2", "#f6f8fa", "#fbefff"} <= fills
    for fill in fills:
        assert fill in rules, f"no dark counterpart of the fill {fill} in layout.css"
        assert _contrast(node_text.group(1), rules[fill]) >= 4.5, fill
    for stroke in set(re.findall(r'stroke="(#\w+)"', svg)):
        assert stroke in rules, f"no dark counterpart of the stroke {stroke} in layout.css"
    for label in set(re.findall(r'<text [^>]*fill="(#\w+)"', svg)) - {
        "#1f2328"
    }:  # node text: above
        assert label in rules and _contrast(rules[label], page) >= 4.5, label
