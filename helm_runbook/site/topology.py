"""A picture of a rendered release: its objects and how they reference each other (volumes, env
refs, selectors, backends, the policy source), as a self-contained SVG laid out by Graphviz (no
script, no font file).

Columns follow the traffic: what routes in (Ingress, ServiceMonitor), the Service, the workload,
then what the pod consumes (Secrets, ConfigMaps, the claim, its ServiceAccount, the policy source).
"""

from __future__ import annotations

import hashlib
import html
import re
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
# Light fills: the dark text on each passes 4.5:1 (#1f2328 on the darkest, #eaeef2, is 13:1).
COLOURS = {"Ingress": "#ddf4ff", "ServiceMonitor": "#fbefff", "Service": "#dafbe1", "Deployment": "#fff8c5",
           "Secret": "#ffebe9", "ConfigMap": "#eaeef2", "PersistentVolumeClaim": "#f6f8fa"}  # fmt: skip


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


def topology_svg(release: RenderedRelease) -> str:
    """The picture as inline SVG, laid out by Graphviz's ``dot`` (Debian ``graphviz``; the PyPI
    ``graphviz`` binding runs it): objects left to right as the traffic flows, every reference an
    arrow with its label placed by the layout engine (no two overlap). Objects the release
    references but does not create are drawn dashed. Named for screen readers (``<title>``,
    ``aria-labelledby``); no script, no font file, no external reference."""
    import graphviz

    nodes, edges = references(release)
    created = {_key(o) for _, o in release.objects}
    graph = graphviz.Digraph(
        name=f"release {release.release}",
        graph_attr={"rankdir": "LR", "nodesep": "0.3", "ranksep": "0.9", "bgcolor": "transparent", "pad": "0.1"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": FONT, "fontsize": "13",
                   "color": "#57606a", "fontcolor": "#1f2328", "margin": "0.15,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "12", "color": "#6e7781", "fontcolor": "#424a53", "arrowsize": "0.7"},
    )  # fmt: skip
    for column in range(4):  # Ingress/ServiceMonitor, Service, workload, what the pod consumes
        with graph.subgraph() as rank:
            rank.attr(rank="same")
            for node in nodes:
                if COLUMNS.get(node.split("/", 1)[0], 3) == column:
                    kind, name = node.split("/", 1)
                    dashed = node not in created and not kind.startswith("policy")
                    rank.node(_dot_escape(node), label=f"<<b>{_dot_html(kind)}</b><br/>{_dot_html(name)}>",
                              fillcolor=COLOURS.get(kind, "#ffffff"),
                              style="rounded,filled,dashed" if dashed else "rounded,filled")  # fmt: skip
    for edge in edges:
        graph.edge(
            _dot_escape(edge.source), _dot_escape(edge.target), label=_dot_escape(edge.label)
        )
    svg = graph.pipe(format="svg", encoding="utf-8")
    return _accessible(
        svg, f"Release {release.release}: {len(nodes)} objects and {len(edges)} references"
    )


FONT = "Helvetica,Arial,sans-serif"


def _dot_html(text: str) -> str:
    """Text inside a Graphviz HTML-like label (``<b>kind</b>``): XML-escaped."""
    return html.escape(text, quote=True)


def _dot_escape(text: str) -> str:
    """Text for a quoted Graphviz attribute: the binding quotes it, backslashes stay literal."""
    return text.replace("\\", "\\\\")


def _accessible(svg: str, name: str) -> str:
    """Graphviz's SVG as an inline picture: no XML prolog, doctype or comments, a ``<title>`` that
    names it and ``role="img"``; sized in CSS pixels (Graphviz writes points, a third larger) and
    centred."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"\n\s*\n", "\n", svg)  # a blank line would end Markdown's raw HTML block
    svg = svg.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "")  # nothing links
    ident = "topology-" + hashlib.sha256(svg.encode()).hexdigest()[:8]
    svg = re.sub(
        r"<svg\b",
        f'<svg role="img" aria-labelledby="{ident}" style="display:block;margin:0 auto;height:auto"',
        svg,
        count=1,
    )
    svg = re.sub(r'(<svg\b[^>]*?\b(?:width|height))="([\d.]+)pt"', r'\1="\2"', svg, count=1)
    svg = re.sub(r'(<svg\b[^>]*?\b(?:width|height))="([\d.]+)pt"', r'\1="\2"', svg, count=1)
    head = svg.index(">") + 1
    return f'{svg[:head]}\n<title id="{ident}">{html.escape(name)}</title>{svg[head:]}'.strip()


def topology_figure(svg: str) -> str:
    """The SVG in a box that scrolls sideways when the window is narrower than the picture (on a
    phone the labels stay readable instead of shrinking)."""
    return f'<figure class="helm-topology" style="overflow-x:auto;margin:0">{svg}</figure>'


class Topology:
    """Renders as the SVG in Jupyter (and on the site) and as the edge list in a terminal."""

    def __init__(self, release: RenderedRelease) -> None:
        self.release = release
        self.nodes, self.edges = references(release)

    def _repr_html_(self) -> str:
        return topology_figure(topology_svg(self.release))

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
