"""The release picture is drawn from the render: other values, another picture."""

from __future__ import annotations

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
    assert 'stroke-dasharray="4 3"' in svg  # edge-tls and ops-auth exist outside the release
