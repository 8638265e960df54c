"""The controlplane and crd policy sources, against a control plane served on 127.0.0.1 and
kmock's Kubernetes API emulator."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from nacl.signing import SigningKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helm_runbook.formats.keys import Signer
from helm_runbook.formats.policy_bundle import composite_material, epoch_ref, pack_ref, policy_hash
from helm_runbook.runtime.policy.crd import CrdSource
from helm_runbook.runtime.policy.reconciler import Reconciler, ReconcileSettings
from helm_runbook.runtime.policy.snapshot import PolicyScope, SnapshotStore
from helm_runbook.runtime.policy.sources import ControlPlaneSource, check_controlplane_url
from helm_runbook.runtime.settings import Settings, SettingsError
from helm_runbook.standins.background import BackgroundServer
from tests.conftest import SERVE_POLICY
from tests.kube_emulator import BackgroundKmock

SCOPE = PolicyScope("default", "default")
POLICY_KEY = Signer(SigningKey(b"\x07" * 32), key_id="policy")
SIGNED = ReconcileSettings(signature_required=True, trust_public_key=POLICY_KEY.public_key_hex)


def _pack(actions: list[dict[str, Any]]) -> bytes:
    return json.dumps({"pack_id": "p", "version": 1, "runtime_actions": actions}).encode()


# -- controlplane -------------------------------------------------------------------------


class ControlPlane:
    """Serves a head and bundle for files in ``root``; the head is signed unless told not to."""

    def __init__(self, root: Path, token: str = "cp-token") -> None:
        self.root, self.token, self.epoch, self.sign = root, token, 1, True
        root.mkdir(parents=True, exist_ok=True)
        (root / "serve-policy.toml").write_text(SERVE_POLICY)
        self.set_pack([])

    def set_pack(self, actions: list[dict[str, Any]], *, sign: bool = True) -> None:
        (self.root / "reference-pack.json").write_text(_pack(actions).decode())
        self.epoch += 1
        self.sign = sign

    def head(self) -> dict[str, Any]:
        bundle = (self.root / "serve-policy.toml").read_bytes()
        refs = [
            pack_ref(
                self.root / "reference-pack.json", (self.root / "reference-pack.json").read_bytes()
            ),
            epoch_ref(self.epoch),
        ]
        return {
            "policy_epoch": self.epoch,
            "policy_hash": policy_hash(bundle, refs),
            "bundle_ref": str(self.root / "serve-policy.toml"),
            "source_refs": refs,
            "signature": POLICY_KEY.sign_hex(composite_material(bundle, refs)) if self.sign else "",
        }

    def app(self) -> Starlette:
        async def guarded(request: Request, body: Any) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            return body if isinstance(body, Response) else JSONResponse(body)

        async def head(request: Request) -> Response:
            assert request.query_params["tenant_id"] == "default"
            return await guarded(request, self.head())

        async def bundle(request: Request) -> Response:
            return await guarded(request, Response((self.root / "serve-policy.toml").read_bytes()))

        return Starlette(
            routes=[Route("/api/v1/policy/head", head), Route("/api/v1/policy/bundle", bundle)]
        )


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[tuple[ControlPlane, BackgroundServer]]:
    plane = ControlPlane(tmp_path / "cp")
    with BackgroundServer(plane.app()) as server:
        yield plane, server


def test_controlplane_signed_rollout(control_plane: tuple[ControlPlane, BackgroundServer]) -> None:
    plane, server = control_plane
    snapshots = SnapshotStore()
    source = ControlPlaneSource(server.base_url, "cp-token")
    reconciler = Reconciler(source, snapshots, SIGNED)
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "ok"
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "no_change"
    plane.set_pack([{"action": "file_read"}], sign=False)
    refused = reconciler.reconcile(SCOPE)
    assert (refused["reconcile_status"], refused["snapshot_status"]) == ("validate_error", "active")
    assert snapshots.get(SCOPE).policy.allow == frozenset()  # type: ignore[union-attr]
    plane.set_pack([{"action": "file_read"}])
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "ok"
    assert snapshots.get(SCOPE).policy.allow == frozenset({"file_read"})  # type: ignore[union-attr]
    source.close()


def test_controlplane_wrong_token_is_source_error(
    control_plane: tuple[ControlPlane, BackgroundServer],
) -> None:
    _, server = control_plane
    with contextlib.closing(ControlPlaneSource(server.base_url, "wrong")) as source:
        status = Reconciler(source, SnapshotStore(), SIGNED).reconcile(SCOPE)
    assert status["reconcile_status"] == "source_error"
    assert "answered 401" in status["reason"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [("https://cp.example", True), ("http://127.0.0.1:9", True), ("http://localhost:9", True),
     ("http://[::1]:9", True), ("http://cp.example", False), ("ftp://127.0.0.1", False), ("", False)],
)  # fmt: skip
def test_controlplane_url_must_be_https_or_loopback(url: str, ok: bool) -> None:
    from helm_runbook.formats.policy_bundle import PolicyFileError

    if ok:
        assert check_controlplane_url(url)
    else:
        with pytest.raises(PolicyFileError, match="https://"):
            check_controlplane_url(url)


def test_controlplane_requires_signatures_and_url(tmp_path: Path) -> None:
    base = {"HELM_POLICY_SOURCE_KIND": "controlplane"}
    for env, message in (
        (base, "HELM_POLICY_CONTROLPLANE_URL"),
        (
            {**base, "HELM_POLICY_CONTROLPLANE_URL": "https://cp"},
            "HELM_POLICY_SIGNATURE_REQUIRED=true",
        ),
    ):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env(
                policy_path=tmp_path / "p.toml", addr="a", port=1, data_dir=tmp_path, environ=env
            )


# -- crd ----------------------------------------------------------------------------------


@pytest.fixture
def kube() -> Iterator[client.ApiClient]:
    with BackgroundKmock() as km, client.ApiClient(client.Configuration(host=km.url)) as api:
        yield api


def _publish(
    api: client.ApiClient, actions: list[dict[str, Any]], *, epoch: int, expected: str | None = None
) -> str:
    """Write the policy ConfigMap, its signature, and the HelmPolicyBundle (create or update)."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    bundle, pack = SERVE_POLICY.encode(), _pack(actions)
    refs = [
        f"reference_pack:configMap:policy#reference-pack.json@sha256:{hashlib.sha256(pack).hexdigest()}"
    ]
    digest = policy_hash(bundle, refs)
    data = {"serve-policy.toml": bundle.decode(), "reference-pack.json": pack.decode()}
    sig = {"sig": POLICY_KEY.sign_hex(composite_material(bundle, refs))}
    for name, payload in (("policy", data), ("policy-proof", sig)):
        try:
            core.create_namespaced_config_map(
                "ns1", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=payload)
            )
        except client.ApiException:
            core.patch_namespaced_config_map(name, "ns1", {"data": payload})
    spec = {
        "tenantId": "default", "workspaceId": "default", "policyEpoch": epoch,
        "bundleRef": {"kind": "configMap", "name": "policy"},
        "proofRef": {"kind": "configMap", "name": "policy-proof", "key": "sig"},
        "expectedPolicyHash": expected or digest,
    }  # fmt: skip
    body = {
        "apiVersion": "policy.helm.ai/v1",
        "kind": "HelmPolicyBundle",
        "metadata": {"name": "bundle"},
        "spec": spec,
    }
    try:
        custom.create_namespaced_custom_object(
            "policy.helm.ai", "v1", "ns1", "helmpolicybundles", body
        )
    except client.ApiException:
        custom.patch_namespaced_custom_object(
            "policy.helm.ai", "v1", "ns1", "helmpolicybundles", "bundle", {"spec": spec}
        )
    return digest


def _status(api: client.ApiClient) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "policy.helm.ai", "v1", "ns1", "helmpolicybundles", "bundle"
    )
    return dict(obj.get("status") or {})  # type: ignore[union-attr]


def test_crd_source_installs_and_writes_status_back(kube: client.ApiClient) -> None:
    source = CrdSource(kube, namespace="ns1")
    snapshots = SnapshotStore()
    reconciler = Reconciler(source, snapshots, SIGNED, on_status=source.report)
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "source_error"  # no CRD served yet
    other = {"apiVersion": "policy.helm.ai/v1", "kind": "HelmPolicyBundle", "metadata": {"name": "other"},
             "spec": {"tenantId": "someone-else", "workspaceId": "default", "policyEpoch": 1}}  # fmt: skip
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "policy.helm.ai", "v1", "ns1", "helmpolicybundles", other
    )
    no_policy = reconciler.reconcile(SCOPE)
    assert (no_policy["reconcile_status"], no_policy["snapshot_status"]) == (
        "no_policy",
        "no_policy",
    )

    digest = _publish(kube, [{"action": "file_read"}], epoch=1)
    status = reconciler.reconcile(SCOPE)
    assert status["reconcile_status"] == "ok", status["reason"]
    assert status["policy_hash"] == digest
    assert _status(kube) == {"observedPolicyHash": digest, "installed": True, "reason": ""}
    assert reconciler.reconcile(SCOPE)["reconcile_status"] == "no_change"

    # A bundle whose bytes do not match expectedPolicyHash is refused; the old one keeps serving.
    _publish(
        kube, [{"action": "file_read"}, {"action": "shell"}], epoch=2, expected="sha256:" + "0" * 64
    )
    refused = reconciler.reconcile(SCOPE)
    assert (refused["reconcile_status"], refused["snapshot_status"]) == ("validate_error", "active")
    assert "hash mismatch" in refused["reason"]
    assert _status(kube)["installed"] is False
    assert snapshots.get(SCOPE).policy.allow == frozenset({"file_read"})  # type: ignore[union-attr]


def test_crd_missing_pack_key_is_source_error(kube: client.ApiClient) -> None:
    _publish(kube, [], epoch=1)
    core = client.CoreV1Api(kube)
    meta = client.V1ObjectMeta(name="no-pack")
    core.create_namespaced_config_map(
        "ns1", client.V1ConfigMap(metadata=meta, data={"serve-policy.toml": SERVE_POLICY})
    )
    client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        "policy.helm.ai", "v1", "ns1", "helmpolicybundles", "bundle",
        {"spec": {"bundleRef": {"kind": "configMap", "name": "no-pack"}}},
    )  # fmt: skip
    status = Reconciler(CrdSource(kube, namespace="ns1"), SnapshotStore(), SIGNED).reconcile(SCOPE)
    assert status["reconcile_status"] == "source_error"
    assert "no key 'reference-pack.json'" in status["reason"]
