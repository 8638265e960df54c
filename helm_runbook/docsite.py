"""The docs site's generated pages: reference tables read from the code at build time, the results
page and the banner each executed runbook carries. Nothing here is hand-copied, so a page cannot
drift from the chart or the runtime it documents.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.docs import unsupported_table, value_docs

TEMPLATE_ENV = re.compile(r"^\s*- name: ([A-Z][A-Z0-9_]+)\s*$")
TEMPLATE_VALUE = re.compile(
    r"(\.Values(?:\.[A-Za-z0-9_]+)+|\$h(?:\.[A-Za-z0-9_]+)+|\$pg(?:\.[A-Za-z0-9_]+)+|\$src(?:\.[A-Za-z0-9_]+)+)"
)
TEMPLATE_RELATIVE = re.compile(r"\{\{ \.([A-Za-z0-9_]+)")
TEMPLATE_ALIASES = {
    ".Values": "",
    "$h": "helm",
    "$pg": "helm.storage.postgres",
    "$src": "helm.policy.source",
}


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


IDENTIFIER_CLASS = "helm-identifier"
CODE_SPAN = re.compile(r"`([^`]+)`")


def _identifier(name: str) -> str:
    """A value path, variable, route, operation or step name as code the site never breaks inside
    (``code.helm-identifier`` in docs/stylesheets/layout.css; attr_list sets the class)."""
    return f"`{name}`{{.{IDENTIFIER_CLASS}}}"


def _identifiers(text: str) -> str:
    """Every code span of ``text`` (``when `helm.proxy.enabled` ``) marked as an identifier."""
    return CODE_SPAN.sub(lambda m: _identifier(m.group(1)), text)


def chart_versions() -> dict[str, str]:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    return {"chart": str(chart["version"]), "app": str(chart["appVersion"])}


# -- values ----------------------------------------------------------------------------------


def values_page() -> str:
    """Every chart value with type, default and description (values.yaml comments + schema)."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    rows = ["| Key | Type | Default | Allowed | Description |", "| --- | --- | --- | --- | --- |"]
    for doc in value_docs(CHART_DIR / "values.yaml"):
        node = _schema_node(schema, doc.key)
        allowed = ", ".join(f"`{v}`" for v in node.get("enum", [])) if node else ""
        if node and "pattern" in node:
            allowed = f"pattern `{node['pattern']}`"
        rows.append(
            f"| {_identifier(doc.key)} | {doc.kind} | {_md(doc.default)} | {_md(allowed)} | {_md(doc.description)} |"
        )
    return (
        "# Chart values\n\nGenerated from `deploy/helm-chart/values.yaml` (its `# --` comments) and "
        "`values.schema.json` when the site is built.\n\n" + "\n".join(rows) + "\n"
    )


def _schema_node(schema: Mapping[str, Any], dotted: str) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for part in dotted.split("."):
        if node is None:
            return None
        node = node.get("properties", {}).get(part)
    return node


# -- environment -------------------------------------------------------------------------------


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name the runtime asks for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def _seen(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)

    def __getitem__(self, name: str) -> str:
        self._seen(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._seen(name)
        return default

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._seen(name)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def runtime_env_names() -> list[str]:
    """The variables ``Settings.from_env`` reads, in the order it reads them (recorded, not parsed)."""
    from helm_runbook.runtime.settings import Settings

    env = _RecordingEnv()
    Settings.from_env(
        policy_path=Path("serve-policy.toml"),
        addr="127.0.0.1",
        port=8080,
        data_dir=Path("data"),
        environ=env,
    )
    return env.names


def chart_env() -> dict[str, str]:
    """Variable → the chart value that sets it (or the condition that switches it on), read from
    the Deployment template."""
    out: dict[str, str] = {}
    lines = (CHART_DIR / "templates" / "deployment.yaml").read_text().splitlines()
    conditions: list[str] = []  # one per open if/with/range block
    scopes: list[str] = []  # the value path `.` stands for inside each open block
    for index, line in enumerate(lines):
        if any(f"{{{{- {kw} " in line for kw in ("if", "with", "range")):
            c = TEMPLATE_VALUE.search(line)
            path = _value_path(c.group(1)) if c else ""
            conditions.append(path if "{{- if " in line else "")
            scopes.append(path if "{{- with " in line else (scopes[-1] if scopes else ""))
        elif "{{- end" in line and conditions:
            conditions.pop()
            scopes.pop()
        condition = next((c for c in reversed(conditions) if c), "")
        scope = scopes[-1] if scopes else ""
        if not (m := TEMPLATE_ENV.match(line)):
            continue
        source = ""
        for following in lines[index + 1 : index + 6]:
            if TEMPLATE_ENV.match(following) or "{{-" in following:
                break
            if "value:" not in following and "key:" not in following:
                continue
            if v := TEMPLATE_VALUE.search(following):
                source = f"`{_value_path(v.group(1))}`"
                break
            if scope and (rel := TEMPLATE_RELATIVE.search(following)):
                source = f"`{scope}.{rel.group(1)}`"
                break
        if not source and condition:
            source = f"when `{condition}`"
        out.setdefault(m.group(1), source)
    return out


def _value_path(expression: str) -> str:
    """``$h.proxy.upstream`` → ``helm.proxy.upstream``; ``.Values.service.port`` → ``service.port``."""
    for alias, prefix in TEMPLATE_ALIASES.items():
        if expression.startswith(alias + "."):
            rest = expression[len(alias) + 1 :]
            return f"{prefix}.{rest}" if prefix else rest
    return expression


def env_page() -> str:
    """Every variable the runtime reads, the chart value that sets it, and that value's description."""
    descriptions = {doc.key: doc.description for doc in value_docs(CHART_DIR / "values.yaml")}
    by_chart = chart_env()
    read = runtime_env_names()
    rows = ["| Variable | Set by chart value | Description |", "| --- | --- | --- |"]
    for name in read:
        value = by_chart.get(name)
        described = descriptions.get((value or "").strip("`"), "") or next(
            (text for text in descriptions.values() if f"({name})" in text or f"`{name}`" in text),
            "",
        )
        rows.append(f"| {_identifier(name)} | {_identifiers(value or '—')} | {_md(described)} |")
    ignored = sorted(set(by_chart) - set(read))
    return (
        "# Runtime environment\n\nRecorded from the reference runtime's `Settings.from_env` (every name it "
        "reads) and matched with the chart's Deployment template when the site is built.\n\n"
        + "\n".join(rows)
        + "\n\n## Set by the chart, ignored by the runtime\n\nUpstream's serve path ignores these too "
        "([upstream contract, D7](../upstream-contract.md#d7)); the chart sets them for the full kernel.\n\n"
        + "\n".join(f"- `{name}`" for name in ignored)
        + "\n"
    )


# -- routes ------------------------------------------------------------------------------------


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
                f"| {_identifier(r.path)} | {', '.join(r.methods)} | {r.auth} | {_identifier(r.operation_id)} | {_md(r.summary)} |"
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


# -- guards ------------------------------------------------------------------------------------


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
        rows.append(f"| {_md(name)} | {'<br>'.join(html.escape(line) for line in lines)} |")
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
        + _identifiers(unsupported_table(CHART_DIR))
        + "\n## Init container\n\nThe `prepare-authority-state` init container refuses to start the pod with:\n\n"
        + init
        + "\n"
    )


# -- results and banners -----------------------------------------------------------------------


def results_page(report: Mapping[str, Any]) -> str:
    """One line per recorded runbook step, from ``build/runbook-report.json``."""
    rows = ["| Runbook | Cell | Step | Status | Duration |", "| --- | --- | --- | --- | --- |"]
    for entry in report.get("notebooks", []):
        for step in entry.get("steps", []):
            status = "✅ passed" if step.get("ok", True) else "❌ failed"
            rows.append(
                f"| {entry['notebook']} | {step['cell']} | {_identifier(step['step'])} | {status} | {step['seconds']:.2f} s |"
            )
        if entry.get("failure"):
            f = entry["failure"]
            rows.append(
                f"| {entry['notebook']} | {f['cell']} | {_md(f['error'])} | ❌ failed | — |"
            )
    meta = report.get("run", {})
    head = (
        f"Executed {meta.get('finished', '?')} against target `{meta.get('target', '?')}`, runtime "
        f"{meta.get('runtime_version', '?')}, chart {meta.get('chart_version', '?')}.\n\n"
        if meta
        else ""
    )
    totals = "".join(
        f"| {e['notebook']} | {'✅ passed' if e['status'] == 'passed' else '❌ ' + e['status']} | {len(e.get('steps', []))} | {e['duration_s']:.1f} s |\n"
        for e in report.get("notebooks", [])
    )
    return (
        "# Results\n\nEvery step the runbooks recorded when this site was built.\n\n"
        + head
        + "| Runbook | Status | Steps | Duration |\n| --- | --- | --- | --- |\n"
        + totals
        + "\n## Steps\n\n"
        + "\n".join(rows)
        + "\n"
    )


def banner_html(entry: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """The banner on top of an executed runbook: when, against what, and whether every step passed."""
    steps = entry.get("steps", [])
    passed = entry.get("status") == "passed" and all(s.get("ok", True) for s in steps)
    kind, verdict = (
        ("success", f"all {len(steps)} steps passed") if passed else ("failure", "a step failed")
    )
    text = (
        f"Executed {run.get('finished', '?')} against the <code>{html.escape(str(run.get('target', '?')))}</code> "
        f"target: runtime {html.escape(str(run.get('runtime_version', '?')))}, chart "
        f"{html.escape(str(run.get('chart_version', '?')))}, {entry.get('duration_s', 0):.1f} s — {verdict}."
    )
    return (
        f'<div class="admonition {kind} helm-runbook-banner"><p class="admonition-title">'
        f"{'Verified run' if passed else 'Failed run'}</p><p>{text}</p></div>"
    )


def add_banner(notebook: Path, entry: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """Insert the banner as the first cell of an executed copy (the site's copy, not papermill's)."""
    doc = json.loads(notebook.read_text())
    cell = {
        "cell_type": "markdown",
        "id": "helm-runbook-banner",
        "metadata": {"tags": ["helm-runbook-banner"]},
        "source": banner_html(entry, run),
    }
    doc["cells"].insert(0, cell)
    notebook.write_text(json.dumps(doc, indent=1))


REFERENCE_PAGES = {
    "reference/values.md": values_page,
    "reference/environment.md": env_page,
    "reference/routes.md": routes_page,
    "reference/guards.md": guards_page,
}


def write_generated_pages(site_src: Path, report: Mapping[str, Any]) -> list[Path]:
    """Write the reference pages and the results page into the site's source tree."""
    written = []
    for relative, page in REFERENCE_PAGES.items():
        path = site_src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page())
        written.append(path)
    results = site_src / "results.md"
    results.write_text(results_page(report))
    written.append(results)
    picture = site_src / "topology.svg"
    picture.write_text(overview_topology())
    written.append(picture)
    return written


def overview_topology() -> str:
    """The overview's picture: the chart rendered with every optional path on (metrics, the
    ServiceMonitor, a TLS Ingress, existing Secrets, the policy ConfigMap), drawn from the render."""
    from helm_runbook.chart import CHART_DIR
    from helm_runbook.chart.sdk import render
    from helm_runbook.topology import topology_svg

    values = {
        "helm": {"signing": {"existingSecret": "helm-signing"}, "auth": {"existingSecret": "helm-auth"},
                 "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
                 "policy": {"source": {"mountedFile": {"existingConfigMap": "helm-policy"}}}},
        "ingress": {"enabled": True, "tls": [{"secretName": "helm-ingress-tls", "hosts": ["helm.local"]}]},
        "persistence": {"enabled": True},
    }  # fmt: skip
    return topology_svg(render(CHART_DIR, values, release="helm-ai-kernel"))
