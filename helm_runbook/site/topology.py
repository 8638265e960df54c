"""A picture of a rendered release: its objects and how they reference each other (volumes, env
refs, selectors, backends, the policy source), as a self-contained SVG (no script, no font file).

Columns follow the traffic: what routes in (Ingress, ServiceMonitor), the Service, the workload,
then what the pod consumes (Secrets, ConfigMaps, the claim, its ServiceAccount, the policy source).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from helm_runbook.chart.manifests import RenderedRelease

COLUMNS = {
    "Ingress": 0,
    "ServiceMonitor": 0,
    "Service": 1,
    "Deployment": 2,
    "Role": 2,
    "RoleBinding": 2,
}
COLOURS = {"Ingress": "#ddf4ff", "ServiceMonitor": "#fbefff", "Service": "#dafbe1", "Deployment": "#fff8c5",
           "Secret": "#ffebe9", "ConfigMap": "#eaeef2", "PersistentVolumeClaim": "#f6f8fa"}  # fmt: skip
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 210, 44, 120, 22, 16


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def references(release: RenderedRelease) -> tuple[list[str], list[Edge]]:
    """The release's objects (``Kind/name``) and every reference between them."""
    objects = [
        obj for _, obj in release.objects if obj["kind"] not in ("Pod", "CustomResourceDefinition")
    ]
    nodes = [_key(o) for o in objects]
    edges: list[Edge] = []
    for obj in objects:
        key, kind = _key(obj), obj["kind"]
        if kind == "Deployment":
            pod = obj["spec"]["template"]
            spec = pod["spec"]
            for volume in spec.get("volumes", []):
                for field, ref_kind, name_key in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name"),
                                                  ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):  # fmt: skip
                    if field in volume:
                        edges.append(
                            Edge(
                                key,
                                f"{ref_kind}/{volume[field][name_key]}",
                                f"volume {volume['name']}",
                            )
                        )
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                for env in container.get("env", []):
                    source = env.get("valueFrom") or {}
                    for field, ref_kind in (
                        ("secretKeyRef", "Secret"),
                        ("configMapKeyRef", "ConfigMap"),
                    ):
                        if field in source:
                            edges.append(
                                Edge(
                                    key, f"{ref_kind}/{source[field]['name']}", f"env {env['name']}"
                                )
                            )
                    if env.get("name") == "HELM_POLICY_SOURCE_KIND" and "value" in env:
                        node = f"policy source/{env['value']}"
                        nodes.append(node)
                        edges.append(Edge(key, node, "reconciles from"))
            if spec.get("serviceAccountName"):
                edges.append(Edge(key, f"ServiceAccount/{spec['serviceAccountName']}", "runs as"))
        elif kind == "Service":
            selector = obj["spec"].get("selector") or {}
            for dep in release.of_kind("Deployment"):
                labels = dep["spec"]["template"]["metadata"].get("labels") or {}
                if selector and selector.items() <= labels.items():
                    ports = ", ".join(str(p.get("name")) for p in obj["spec"].get("ports", []))
                    edges.append(Edge(key, _key(dep), f"selects ({ports})"))
        elif kind == "Ingress":
            for rule in obj["spec"].get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    service = path["backend"]["service"]
                    port = service["port"].get("name") or service["port"].get("number")
                    edges.append(
                        Edge(
                            key,
                            f"Service/{service['name']}",
                            f"{rule.get('host', '*')}{path['path']} → {port}",
                        )
                    )
            for tls in obj["spec"].get("tls") or []:
                edges.append(Edge(key, f"Secret/{tls.get('secretName')}", "tls"))
        elif kind == "ServiceMonitor":
            selector = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
            for service in release.of_kind("Service"):
                if (
                    selector
                    and selector.items() <= (service["metadata"].get("labels") or {}).items()
                ):
                    endpoint = (obj["spec"].get("endpoints") or [{}])[0]
                    edges.append(
                        Edge(
                            key,
                            _key(service),
                            f"scrapes {endpoint.get('port')}{endpoint.get('path', '')}",
                        )
                    )
        elif kind == "RoleBinding":
            edges.append(Edge(key, f"{obj['roleRef']['kind']}/{obj['roleRef']['name']}", "grants"))
            for subject in obj.get("subjects") or []:
                edges.append(Edge(key, f"{subject['kind']}/{subject['name']}", "to"))
    for edge in edges:  # a reference to an object the release does not create (an existing Secret)
        if edge.target not in nodes:
            nodes.append(edge.target)
    return nodes, edges


def topology_svg(release: RenderedRelease, existing: frozenset[str] = frozenset()) -> str:
    """The SVG; objects the release references but does not create are drawn dashed."""
    nodes, edges = references(release)
    created = {_key(o) for _, o in release.objects}
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(COLUMNS.get(node.split("/", 1)[0], 3), []).append(node)
    place: dict[str, tuple[float, float]] = {}
    height = max(len(c) for c in columns.values()) * (BOX_H + GAP_Y) + 2 * MARGIN + 20
    for column, members in columns.items():
        top = (height - len(members) * (BOX_H + GAP_Y)) / 2
        for row, node in enumerate(members):
            place[node] = (MARGIN + column * (BOX_W + GAP_X), top + row * (BOX_H + GAP_Y))
    width = MARGIN * 2 + 4 * BOX_W + 3 * GAP_X
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" width="{width}" '
             f'role="img" aria-label="release {html.escape(release.release)}: objects and references" '
             'font-family="sans-serif" font-size="11">',
             '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#57606a"/></marker></defs>']  # fmt: skip
    for edge in edges:
        (x1, y1), (x2, y2) = place[edge.source], place[edge.target]
        if x2 > x1:
            ax, ay, bx, by = x1 + BOX_W, y1 + BOX_H / 2, x2, y2 + BOX_H / 2
        else:
            ax, ay, bx, by = x1 + BOX_W / 2, y1 + BOX_H, x2 + BOX_W / 2, y2
        mx = (ax + bx) / 2
        parts.append(f'<path d="M{ax:.0f},{ay:.0f} C{mx:.0f},{ay:.0f} {mx:.0f},{by:.0f} {bx:.0f},{by:.0f}" '
                     'fill="none" stroke="#8c959f" marker-end="url(#arrow)"/>')  # fmt: skip
        parts.append(f'<text x="{mx:.0f}" y="{(ay + by) / 2 - 3:.0f}" text-anchor="middle" fill="#57606a" font-size="9">'
                     f"{html.escape(edge.label[:40])}</text>")  # fmt: skip
    for node, (x, y) in place.items():
        kind, name = node.split("/", 1)
        dashed = (
            ' stroke-dasharray="4 3"'
            if node not in created and not kind.startswith("policy")
            else ""
        )
        parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                     f'fill="{COLOURS.get(kind, "#ffffff")}" stroke="#57606a"{dashed}/>')  # fmt: skip
        parts.append(
            f'<text x="{x + 8:.0f}" y="{y + 17:.0f}" font-weight="bold">{html.escape(kind)}</text>'
        )
        parts.append(f'<text x="{x + 8:.0f}" y="{y + 33:.0f}">{html.escape(name[:34])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


class Topology:
    """Renders as the SVG in Jupyter (and on the site) and as the edge list in a terminal."""

    def __init__(self, release: RenderedRelease) -> None:
        self.release = release
        self.nodes, self.edges = references(release)

    def _repr_svg_(self) -> str:
        return topology_svg(self.release)

    def __str__(self) -> str:
        return "\n".join(f"{e.source} --{e.label}--> {e.target}" for e in self.edges)


def release_topology(target: Any) -> Topology:
    """The installed release's picture (recorded: how many objects and references it shows)."""
    from helm_runbook.harness.record import record
    from helm_runbook.harness.results import StepReport
    from helm_runbook.steps.observability import _release

    picture = Topology(_release(target))
    record(StepReport("topology", "objects and references of the release", [],
                      values={"nodes": len(picture.nodes), "edges": len(picture.edges),
                              "kinds": sorted({n.split("/", 1)[0] for n in picture.nodes})}))  # fmt: skip
    return picture
