"""Reference pages generated from the code when the site is built: chart values (values.yaml
comments and the schema), the runtime's routes, and the chart's guard messages as Helm prints them.
Nothing here is hand-copied, so a page cannot drift from the chart or the runtime it documents."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.docs import unsupported_table, value_docs
from helm_runbook.site.markup import identifier, identifiers, md_cell


def values_page() -> str:
    """Every chart value with type, default and description (values.yaml comments + schema), a
    table per section of values.yaml (``image``, ``probes``, ``helm.policy``...): a reader finds
    a section in the page's contents, and a phone lays out only the tables near the window (one
    table of every value was 0.3-0.4 s of blocking layout on Lighthouse's phone)."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    header = ["| Key | Type | Default | Allowed | Description |", "| --- | --- | --- | --- | --- |"]
    sections: dict[str, list[str]] = {}
    for doc in value_docs(CHART_DIR / "values.yaml"):
        node = schema_node(schema, doc.key)
        allowed = ", ".join(f"`{v}`" for v in node.get("enum", [])) if node else ""
        if node and "pattern" in node:
            allowed = f"pattern `{node['pattern']}`"
        sections.setdefault(values_section(doc.key), list(header)).append(
            f"| {identifier(doc.key)} | {doc.kind} | {md_cell(doc.default)} | {md_cell(allowed)} | {md_cell(doc.description)} |"
        )
    return (
        "# Chart values\n\nGenerated from `deploy/helm-chart/values.yaml` (its `# --` comments) and "
        "`values.schema.json` when the site is built.\n\n"
        + "\n".join(f"## {name}\n\n" + "\n".join(rows) + "\n" for name, rows in sections.items())
    )


def values_section(key: str) -> str:
    """The section a value is listed under: its top-level key (``probes``), or the key under
    ``helm`` for the runtime's own values (``helm.policy``); top-level values without children
    (``replicaCount``) share "Top level"."""
    parts = key.split(".")
    if len(parts) == 1:
        return "Top level"
    return ".".join(parts[:2]) if parts[0] == "helm" and len(parts) > 2 else parts[0]


def schema_node(schema: Mapping[str, Any], dotted: str) -> Mapping[str, Any] | None:
    """The schema of the value at ``dotted`` (``helm.auth.existingSecret``), None when undeclared."""
    node: Mapping[str, Any] | None = schema
    for part in dotted.split("."):
        if node is None:
            return None
        node = node.get("properties", {}).get(part)
    return node


def routes_page() -> str:
    """The runtime's own route table: path, methods, auth class, operation id, summary."""
    from helm_runbook.runtime.routes import API_ROUTES, HEALTH_ROUTES

    def table(routes: Any) -> str:
        rows = [
            "| Path | Methods | Auth | Operation | Summary |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in routes:
            rows.append(
                f"| {identifier(r.path)} | {', '.join(r.methods)} | {r.auth} | {identifier(r.operation_id)} | {md_cell(r.summary)} |"
            )
        return "\n".join(rows)

    return (
        "# HTTP routes\n\nGenerated from the runtime's route table (`helm_runbook/runtime/routes.py`) "
        "when the site is built.\n\n## API port (8080)\n\n"
        + table(API_ROUTES)
        + "\n\n## Health port (8081)\n\nNo middleware; any method.\n\n"
        + table(HEALTH_ROUTES)
        + "\n"
    )


def guard_refusals() -> list[tuple[str, list[str]]]:
    """Each guard case of the chart smoke, rendered through Helm: the refusal lines Helm prints."""
    from helm_runbook.chart.sdk import render
    from helm_runbook.chart.smoke import GUARD_CASES
    from helm_runbook.errors import ChartError

    out = []
    for case in GUARD_CASES:
        try:
            render(CHART_DIR, case.values)
        except ChartError as exc:
            out.append((case.name, [line for line in exc.message.split("; ") if line]))
        else:
            out.append((case.name, ["(rendered: this guard no longer refuses)"]))
    return out


def init_refusals() -> list[str]:
    """The init container's refusals (``fail "..."`` in its authority-state script)."""
    text = (CHART_DIR / "templates" / "deployment.yaml").read_text()
    return re.findall(r'\|\| fail "([^"]+)"', text)


def template_guards() -> list[str]:
    """The messages ``_validate.tpl`` collects (static text; ``%q``/``%s`` show where values go)."""
    text = (CHART_DIR / "templates" / "_validate.tpl").read_text()
    out = []
    for literal, helper in re.findall(
        r'append \$msgs (?:(?:\(printf )?"((?:[^"\\]|\\.)+)"|\(include "([^"]+)")', text
    ):
        if helper:  # a message built by a helper: its printf format
            body = text[text.index(f'define "{helper}"') :]
            literal = re.findall(r'printf "((?:[^"\\]|\\.)+)" \$shown', body)[0]
        out.append(literal)
    return out


def guards_page() -> str:
    rows = ["| Values | Helm refuses with |", "| --- | --- |"]
    for name, lines in guard_refusals():
        rows.append(f"| {md_cell(name)} | {'<br>'.join(html.escape(line) for line in lines)} |")
    init = "\n".join(f"- `prepare-authority-state: {line}`" for line in init_refusals())
    return (
        "# Guard messages\n\nEvery refusal below was produced by rendering the chart through Helm's Go SDK "
        "when the site was built (the cases of `make helm-chart-smoke`).\n\n"
        + "\n".join(rows)
        + "\n\n## Every guard of the chart\n\nThe messages `templates/_validate.tpl` can collect; the values schema "
        "catches some values first (its message is the one above).\n\n"
        + "\n".join(f"- {html.escape(message)}" for message in template_guards())
        + "\n\n## Upstream values this chart refuses\n\nSet to anything (even `false`), each is refused by name: "
        "leave it unset, or deploy with the upstream helm-ai-kernel chart for that feature.\n\n"
        + identifiers(unsupported_table(CHART_DIR))
        + "\n## Init container\n\nThe `prepare-authority-state` init container refuses to start the pod with:\n\n"
        + init
        + "\n"
    )
