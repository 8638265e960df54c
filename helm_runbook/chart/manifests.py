"""Rendered releases: lookups by kind and name, and validation against Kubernetes' OpenAPI schemas.

``kubernetes-validate`` runs in strict mode (loose mode lets a misspelled field through).
Objects it has no schema for (ServiceMonitor, HelmPolicyBundle and other custom resources) are
reported as *unchecked*, never as passed.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from helm_runbook.harness.results import Table
from helm_runbook.imports import skip_iri_grammars


@dataclass(frozen=True)
class RenderedRelease:
    release: str
    namespace: str
    objects: list[tuple[str, dict[str, Any]]]  # (template path, object)
    notes: str = ""
    values: dict[str, Any] = field(
        default_factory=dict
    )  # what the operator supplied (helm get values)

    def kinds(self) -> Counter[str]:
        return Counter(obj["kind"] for _, obj in self.objects)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for _, obj in self.objects if obj.get("kind") == kind]

    def get(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The one object of ``kind`` (and ``name``); KeyError naming what exists otherwise."""
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        if len(found) != 1:
            names = [o["metadata"]["name"] for o in self.of_kind(kind)]
            raise KeyError(f"{kind} {name or ''}: found {len(found)} (rendered {kind}s: {names})")
        return found[0]

    def has(self, kind: str, name: str | None = None) -> bool:
        return any(name is None or o["metadata"]["name"] == name for o in self.of_kind(kind))

    def table(self) -> Table:
        rows = [
            [obj["kind"], obj["metadata"]["name"], source.split("/templates/")[-1]]
            for source, obj in self.objects
        ]
        return Table(f"helm template {self.release}", ["kind", "name", "template"], rows,
                     summary=", ".join(f"{n} {k}" for k, n in sorted(self.kinds().items())))  # fmt: skip

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


@dataclass(frozen=True)
class ValidationReport:
    kube_version: str
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # no schema shipped for these kinds
    failed: list[tuple[str, str]] = field(default_factory=list)  # (object, message)

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> Table:
        rows: list[list[object]] = [[name, "valid"] for name in self.checked]
        rows += [[name, "UNCHECKED (no schema)"] for name in self.unchecked]
        rows += [[name, f"INVALID: {message}"] for name, message in self.failed]
        return Table(f"schema validation (Kubernetes {self.kube_version}, strict)", ["object", "result"], rows,
                     ok=self.ok, summary=f"{len(self.checked)} valid, {len(self.unchecked)} unchecked, "
                     f"{len(self.failed)} invalid")  # fmt: skip

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def _parse_schemas_once(utils: Any) -> None:
    """kubernetes_validate reads and parses the kind's schema and the whole ``_definitions.json``
    for every object it validates: about 0.2 s of JSON parsing per chart smoke run, the same
    read-only files each time. Parsed once per process instead; every object is still validated."""
    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.cache(utils.schema_contents)


def validate(release: RenderedRelease, kube_version: str = "1.31.0") -> ValidationReport:
    """Strict OpenAPI validation of every rendered object."""
    skip_iri_grammars()  # about 1 s of runbook 01 otherwise (helm_runbook/imports.py)
    import kubernetes_validate
    from kubernetes_validate import utils
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    _parse_schemas_once(utils)

    report = ValidationReport(kube_version)
    for _, obj in release.objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except SchemaNotFoundError:
            report.unchecked.append(name)
        except ValidationError as exc:
            where = ".".join(str(p) for p in getattr(exc, "path", []))
            report.failed.append((name, f"{where}: {exc.message}" if where else str(exc.message)))
        else:
            report.checked.append(name)
    return report
