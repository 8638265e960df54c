"""The ``crd`` policy source (docs/upstream-contract.md#d6): ``HelmPolicyBundle`` objects through the Kubernetes API.

The runtime's only ``kubernetes`` import. For the runtime's scope it picks the bundle object with
``spec.tenantId``/``spec.workspaceId`` matching and the highest ``spec.policyEpoch``; its
``spec.bundleRef`` names a ConfigMap or Secret holding ``serve-policy.toml`` (key ``bundleRef.key``,
default ``serve-policy.toml``) and, beside it in the same object, the reference pack the TOML
names. ``spec.expectedPolicyHash`` must equal the composite hash of those bytes;
``spec.proofRef`` (``{kind, name, key}``) names the hex Ed25519 signature. After each reconcile
the result is written back to the object's ``status`` (``observedPolicyHash``, ``installed``,
``reason``).
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from helm_runbook.formats.canonical import sha256_ref
from helm_runbook.formats.policy_bundle import PolicyFileError, parse_serve_policy
from helm_runbook.runtime.policy.snapshot import PolicyScope
from helm_runbook.runtime.policy.sources import PolicyHead

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class ObjectRef:
    kind: str  # configMap | secret
    name: str
    key: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}#{self.key}"


def _ref(spec: Any, default_key: str, what: str) -> ObjectRef:
    if (
        not isinstance(spec, dict)
        or spec.get("kind") not in ("configMap", "secret")
        or not spec.get("name")
    ):
        raise PolicyFileError(
            f"{what} must be {{kind: configMap|secret, name, key?}}, got {spec!r}",
            status="source_error",
        )
    return ObjectRef(str(spec["kind"]), str(spec["name"]), str(spec.get("key") or default_key))


class CrdSource:
    kind = "crd"
    published_epochs = True
    signed_epochs = False  # spec.policyEpoch is written through the authenticated Kubernetes API

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        group: str = "policy.helm.ai",
        resource: str = "HelmPolicyBundle",
    ) -> None:
        self.namespace = namespace
        self.group = group
        self.plural = resource.lower() + "s"
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._current: str = ""  # name of the object the last head came from

    @classmethod
    def from_settings(cls, group: str, resource: str, namespace: str) -> CrdSource:
        """In-cluster config in a pod, else the kubeconfig (``KUBECONFIG``) for local runs."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        if not namespace:
            namespace = SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.exists() else "default"
        return cls(client.ApiClient(), namespace=namespace, group=group, resource=resource)

    def _object_data(self, ref: ObjectRef) -> dict[str, bytes]:
        try:
            if ref.kind == "configMap":
                cm = self._core.read_namespaced_config_map(ref.name, self.namespace)
                return {k: v.encode() for k, v in (cm.data or {}).items()}
            secret = self._core.read_namespaced_secret(ref.name, self.namespace)
            return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        except ApiException as exc:
            raise PolicyFileError(
                f"cannot read {ref.kind} {self.namespace}/{ref.name}: {exc.status} {exc.reason}",
                status="source_error",
            ) from exc

    def _value(self, ref: ObjectRef) -> bytes:
        data = self._object_data(ref)
        if ref.key not in data:
            raise PolicyFileError(
                f"{ref.kind} {self.namespace}/{ref.name} has no key {ref.key!r}",
                status="source_error",
            )
        return data[ref.key]

    def _bundle_object(self, scope: PolicyScope) -> dict[str, Any]:
        try:
            listed: dict[str, Any] = self._custom.list_namespaced_custom_object(  # type: ignore[assignment]
                self.group, "v1", self.namespace, self.plural
            )
        except ApiException as exc:
            raise PolicyFileError(
                f"cannot list {self.plural}.{self.group} in {self.namespace}: {exc.status} {exc.reason}",
                status="source_error",
            ) from exc
        items: list[dict[str, Any]] = listed.get("items", [])
        matching = [
            item for item in items
            if (item.get("spec") or {}).get("tenantId") == scope.tenant_id
            and (item.get("spec") or {}).get("workspaceId") == scope.workspace_id
        ]  # fmt: skip
        if not matching:
            raise PolicyFileError(
                f"no {self.plural}.{self.group} in {self.namespace} for scope {scope.key}",
                status="no_policy",
            )
        return max(matching, key=lambda item: int(item["spec"].get("policyEpoch") or 0))

    def head(self, scope: PolicyScope) -> PolicyHead:
        obj = self._bundle_object(scope)
        spec = obj["spec"]
        self._current = obj["metadata"]["name"]
        bundle_ref = _ref(spec.get("bundleRef"), "serve-policy.toml", "spec.bundleRef")
        bundle = self._value(bundle_ref)
        serve = parse_serve_policy(bundle, source=bundle_ref.label)
        pack_ref = ObjectRef(bundle_ref.kind, bundle_ref.name, Path(serve.reference_pack).name)
        pack = self._value(pack_ref)
        signature = ""
        if spec.get("proofRef"):
            signature = (
                self._value(_ref(spec["proofRef"], "serve-policy.toml.sig", "spec.proofRef"))
                .decode()
                .strip()
            )
        return PolicyHead(
            scope=scope,
            policy_epoch=int(spec.get("policyEpoch") or 0),
            policy_hash=str(spec.get("expectedPolicyHash") or ""),
            bundle_ref=bundle_ref.label,
            source_refs=(f"{self.plural}.{self.group}:{self.namespace}/{self._current}",
                         f"reference_pack:{pack_ref.label}@{sha256_ref(pack)}"),
            signature=signature,
        )  # fmt: skip

    def load(self, scope: PolicyScope, head: PolicyHead) -> bytes:
        kind, rest = head.bundle_ref.split(":", 1)
        name, key = rest.split("#", 1)
        return self._value(ObjectRef(kind, name, key))

    def load_pack(self, head: PolicyHead, reference: str) -> tuple[str, bytes]:
        kind, rest = head.bundle_ref.split(":", 1)
        name = rest.split("#", 1)[0]
        ref = ObjectRef(kind, name, Path(reference).name)
        return ref.label, self._value(ref)

    def report(self, status: dict[str, Any]) -> None:
        """Write the reconcile outcome to the bundle object's ``status`` (best effort)."""
        if not self._current:
            return
        body = {
            "status": {
                "observedPolicyHash": status.get("desired_policy_hash", ""),
                "installed": status.get("reconcile_status") in ("ok", "no_change")
                and status.get("installed_policy_hash") == status.get("desired_policy_hash"),
                "reason": status.get("reason", ""),
            }
        }
        with contextlib.suppress(ApiException):
            self._custom.patch_namespaced_custom_object_status(
                self.group, "v1", self.namespace, self.plural, self._current, body
            )
