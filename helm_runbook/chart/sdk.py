"""The project's only ``helm_python`` import (PyPI ``helm-python-sdk``: Helm v4's Go SDK).

Lint and render run in-process through Helm's shared library, loaded once per process. Helm's
own messages are kept verbatim in ``ChartError.helm_message``; the exception adds what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from helm_runbook.chart.manifests import RenderedRelease
from helm_runbook.chart.schema import explain
from helm_runbook.chart.values import merge_values
from helm_runbook.errors import ChartError, RenderError, ValuesError
from helm_runbook.harness.results import Table

SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
#: libyaml's safe loader where PyYAML was built with it: parsing a render's manifests is most of
#: a render's time with the pure-Python loader (about 40 ms of 55), a few ms with libyaml.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class LintReport:
    """``helm lint`` findings; ``ok`` when Helm reported no errors."""

    chart: str
    errors: list[str]
    messages: list[tuple[str, str, str]] = field(default_factory=list)  # (severity, path, text)

    @property
    def ok(self) -> bool:
        return not self.errors

    def table(self) -> Table:
        rows = [[sev, path, text] for sev, path, text in self.messages] + [
            ["error", "", e] for e in self.errors
        ]
        return Table(f"helm lint {self.chart}", ["severity", "path", "message"], rows, ok=self.ok,
                     summary=f"{len(self.errors)} errors, {len(self.messages)} messages")  # fmt: skip

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def lint(
    chart: Path, values: dict[str, Any] | None = None, *, kube_version: str = "v1.31.0"
) -> LintReport:
    """Run Helm's linter (strict). It does not evaluate ``fail`` guards: test those with ``render``."""
    report = helm.lint(str(chart), values=values, strict=True, kube_version=kube_version)
    messages = [(SEVERITY.get(m.get("severity", 0), "unknown"), m.get("path", ""), m.get("error", ""))
                for m in report.get("messages", [])]  # fmt: skip
    errors: list[str] = []
    for text in report.get("errors", []):  # schema refusals restated as operators write values
        for line in [str(p) for p in explain(text, chart)] or [text]:
            if line not in errors:
                errors.append(line)
    return LintReport(str(chart), errors, messages)


def set_values(*expressions: str) -> dict[str, Any]:
    """Values from ``--set`` expressions, parsed by Helm's own strvals parser, merged in order."""
    merged: dict[str, Any] = {}
    for expression in expressions:
        try:
            merged = merge_values(merged, helm.parse_set_string(expression))
        except helm.HelmError as exc:
            raise ValuesError(
                f"--set {expression!r} does not parse",
                fix="use key.path=value",
                helm_message=str(exc),
            ) from exc
    return merged


_GUARD_LINE = re.compile(r"^\s*- (.+)$", re.M)
GUARD_HEADER = "helm-ai-kernel: values need attention:"  # _validate.tpl's fail() opens with it


def refusal(helm_message: str, chart: Path) -> ChartError | None:
    """Helm's refusal (schema or ``_validate.tpl`` guard) naming each value and its fix, if it is one."""
    if problems := explain(helm_message, chart):
        return ValuesError(
            "values do not meet values.schema.json: " + "; ".join(str(p) for p in problems),
            fix="; ".join(p.fix for p in problems),
            helm_message=helm_message,
        )
    if GUARD_HEADER in helm_message and (guards := _GUARD_LINE.findall(helm_message)):
        return RenderError("the chart refused to render: " + "; ".join(g.rstrip(".") for g in guards), fix=guards[0],
                           helm_message=helm_message)  # fmt: skip
    return None


def _templates(
    chart: Path, values: dict[str, Any] | None, release: str, namespace: str
) -> dict[str, str]:
    """Each template's rendered text by source, or the refusal naming what to fix."""
    try:
        with helm.Chart.load(str(chart)) as loaded:
            rendered: dict[str, str] = loaded.render(
                values or {}, name=release, namespace=namespace
            )
    except (helm.HelmValuesError, helm.HelmRenderError) as exc:
        raise refusal(str(exc), chart) or RenderError(
            f"the chart refused to render: {exc}", fix="see Helm's message", helm_message=str(exc)
        ) from exc
    except helm.HelmChartLoadError as exc:
        raise ChartError(
            f"cannot load chart {chart}", fix="point at deploy/helm-chart", helm_message=str(exc)
        ) from exc
    return rendered


def render(
    chart: Path,
    values: dict[str, Any] | None = None,
    *,
    release: str = "helm-ai-kernel",
    namespace: str = "default",
) -> RenderedRelease:
    """``helm template``: the parsed objects of a release, or a ChartError naming what to fix."""
    rendered = _templates(chart, values, release, namespace)
    objects: list[tuple[str, dict[str, Any]]] = []
    notes = ""
    for source, text in sorted(rendered.items()):
        if source.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.load_all(text, Loader=_SAFE_LOADER):
            if isinstance(doc, dict) and doc:
                objects.append((source, doc))
    return RenderedRelease(release=release, namespace=namespace, objects=objects, notes=notes,
                           values=values or {})  # fmt: skip


def template_text(
    chart: Path, values: dict[str, Any] | None = None, *, release: str = "helm-ai-kernel",
    namespace: str = "default",
) -> str:  # fmt: skip
    """``helm template`` as the CLI prints it (each manifest after ``---`` and its ``# Source:``),
    NOTES left out: the text upstream's chart CI greps. Refusals as ``render`` raises them."""
    rendered = _templates(chart, values, release, namespace)
    return "".join(f"---\n# Source: {source}\n{text.strip()}\n" for source, text in sorted(rendered.items())
                   if not source.endswith("NOTES.txt") and text.strip())  # fmt: skip


def install_release(
    chart: Path, release: str, values: dict[str, Any], *, namespace: str, kube_context: str | None = None,
    kubeconfig: str | None = None, dry_run: str | None = None, timeout_s: int = 300,
) -> RenderedRelease:  # fmt: skip
    """``helm upgrade --install`` through Helm's Go SDK; returns the release's parsed manifest.

    ``dry_run="client"`` renders the release exactly as an install would without a cluster.
    """
    with helm.Config(
        kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=namespace
    ) as config:
        try:
            try:
                if dry_run:
                    raise helm.HelmReleaseError(
                        "dry run: install"
                    )  # upgrade needs a cluster's history
                result = config.upgrade(
                    str(chart), release, values, namespace=namespace, timeout=timeout_s
                )
            except helm.HelmReleaseError:
                result = config.install(str(chart), release, values, namespace=namespace, timeout=timeout_s,
                                        dry_run=dry_run)  # fmt: skip
        except helm.HelmKubeError as exc:
            raise _unreachable(kube_context, exc) from exc
        except helm.HelmReleaseError as exc:
            raise refusal(str(exc), chart) or RenderError(
                f"helm install {release} failed: {exc}", helm_message=str(exc),
                fix="read Helm's message; guards list every missing value with its fix") from exc  # fmt: skip
    return RenderedRelease(release=release, namespace=namespace, objects=manifest_objects(release, result.get("manifest")),
                           notes=str(result.get("info", "")), values=values)  # fmt: skip


def uninstall_release(
    release: str, *, namespace: str, kube_context: str | None = None, kubeconfig: str | None = None,
    timeout_s: int = 300,
) -> tuple[RenderedRelease, str]:  # fmt: skip
    """``helm uninstall`` through Helm's Go SDK: the release as it was (objects, supplied values)
    and Helm's info line (which names the objects a ``keep`` resource policy left in place)."""
    with helm.Config(
        kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=namespace
    ) as config:
        try:
            result = config.uninstall(release, timeout=timeout_s)
        except helm.HelmKubeError as exc:
            raise _unreachable(kube_context, exc) from exc
        except helm.HelmError as exc:
            raise ChartError(f"helm uninstall {release} failed: {exc}", helm_message=str(exc),
                             fix=f"check `helm status {release} -n {namespace}`") from exc  # fmt: skip
    record = result.get("release") or {}
    was = RenderedRelease(release=release, namespace=namespace, objects=manifest_objects(release, record.get("manifest")),
                          values=dict(record.get("config") or {}))  # fmt: skip
    return was, str(result.get("info", ""))


def _unreachable(kube_context: str | None, exc: Exception) -> ChartError:
    """Helm could not talk to the cluster: the same refusal for every release operation."""
    return ChartError(f"cannot reach the cluster of context {kube_context!r}", helm_message=str(exc),
                      fix="check `kubectl --context <name> get ns`, or run the runbooks with target=local")  # fmt: skip


def manifest_objects(release: str, manifest: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a release manifest (Helm's multi-document YAML)."""
    return [(f"{release}/manifest", doc) for doc in yaml.safe_load_all(manifest or "")
            if isinstance(doc, dict) and doc]  # fmt: skip


def upgrade_release(
    chart: Path, release: str, values: dict[str, Any], *, namespace: str, timeout_s: int,
    kube_context: str | None = None, kubeconfig: str | None = None,
) -> RenderedRelease:  # fmt: skip
    """``helm upgrade --wait --timeout``: Helm marks the revision ``failed`` when the rollout is
    not ready in time (and raises RenderError with its message); no install fallback."""
    with helm.Config(
        kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=namespace
    ) as config:
        try:
            result = config.upgrade(str(chart), release, values, namespace=namespace,
                                    timeout=timeout_s, wait="watcher")  # fmt: skip
        except helm.HelmKubeError as exc:
            raise _unreachable(kube_context, exc) from exc
        except helm.HelmError as exc:
            raise refusal(str(exc), chart) or RenderError(
                f"helm upgrade {release} failed: {exc}", helm_message=str(exc),
                fix=f"`helm history {release}` shows the failed revision; roll back to the last deployed one") from exc  # fmt: skip
    return RenderedRelease(release=release, namespace=namespace, objects=manifest_objects(release, result.get("manifest")),
                           notes=str(result.get("notes", "")), values=values)  # fmt: skip


def release_history(
    release: str, *, namespace: str, kube_context: str | None = None, kubeconfig: str | None = None
) -> list[dict[str, Any]]:
    """``helm history`` from Helm's release storage (oldest first), each revision with its
    supplied values and manifest; empty when the release does not exist."""
    with helm.Config(
        kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=namespace
    ) as config:
        try:
            entries = config.history(release)
            out = []
            for entry in entries:
                number = int(entry.get("revision") or entry.get("version") or 0)
                full = config.get_all(release, revision=number)
                out.append({**entry, "revision": number, "config": full.get("config") or {},
                            "manifest": full.get("manifest") or (full.get("summary") or {}).get("manifest")
                            or entry.get("manifest", "")})  # fmt: skip
        except helm.HelmNotFoundError:
            return []
        except helm.HelmKubeError as exc:
            raise _unreachable(kube_context, exc) from exc
    return out


def rollback_release(
    release: str, revision: int | None, *, namespace: str, timeout_s: int,
    kube_context: str | None = None, kubeconfig: str | None = None,
) -> None:  # fmt: skip
    """``helm rollback RELEASE [REVISION] --wait --timeout`` (None: the previous revision)."""
    with helm.Config(
        kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=namespace
    ) as config:
        try:
            config.rollback(release, version=revision, timeout=timeout_s, wait="watcher")
        except helm.HelmKubeError as exc:
            raise _unreachable(kube_context, exc) from exc
        except helm.HelmError as exc:
            raise ChartError(f"helm rollback {release} failed: {exc}", helm_message=str(exc),
                             fix=f"`helm history {release} -n {namespace}` lists the revisions to roll back to") from exc  # fmt: skip
