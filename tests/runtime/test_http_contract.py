"""The HTTP contract of issue 2: every route, every auth failure, every validation error.

Each case asserts the status and upstream's exact ``detail``, and that a refused request wrote no
receipt.
"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from helm_runbook.runtime.app import create_health_app
from helm_runbook.runtime.context import Runtime
from helm_runbook.runtime.limits import MAX_LISTING_BYTES
from helm_runbook.runtime.routes import API_ROUTES
from helm_runbook.runtime.store import sql as store_sql
from helm_runbook.runtime.store.base import ReceiptQuery
from tests.conftest import ADMIN_KEY, PRINCIPAL, TENANT, TENANT_HEADERS, RuntimeFactory

EVAL = {
    "tool": "file_read",
    "effect_level": "E1",
    "session_id": "s1",
    "args": {"path": "/etc/hostname"},
}
BEARER = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _stored(runtime: Runtime) -> int:
    return len(runtime.store.list(ReceiptQuery("default", limit=1000)).items)


def _problem(response: object, status: int, detail: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["type"] == f"https://helm.mindburn.run/errors/{status}"
    assert body["status"] == status
    assert body["detail"] == detail


# -- auth ---------------------------------------------------------------------------------

AUTH_CASES = [
    ({}, 401, "Missing Authorization header"),
    ({"Authorization": "bearer " + ADMIN_KEY}, 401, "Invalid Authorization header format (expected 'Bearer <key>')"),
    ({"Authorization": "Basic abc"}, 401, "Invalid Authorization header format (expected 'Bearer <key>')"),
    ({"Authorization": "Bearer "}, 401, "Missing bearer token"),
    ({"Authorization": "Bearer wrong"}, 401, "Invalid API key"),
    (BEARER, 403, "Tenant-scoped route requires explicit tenant binding"),
    ({**BEARER, "X-Helm-Tenant-ID": TENANT}, 403, "Tenant-scoped route requires explicit principal binding"),
    ({**BEARER, "X-Helm-Tenant-ID": "other", "X-Helm-Principal-ID": PRINCIPAL}, 403, "Tenant-scoped route tenant mismatch"),
    ({**BEARER, "X-Helm-Tenant-ID": TENANT, "X-Helm-Principal-ID": "intruder"}, 403, "Tenant-scoped route principal mismatch"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "status", "detail"), AUTH_CASES)
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/v1/evaluate"), ("GET", "/api/v1/receipts")]
)
def test_tenant_scoped_auth_matrix(
    client: TestClient,
    runtime: Runtime,
    headers: dict[str, str],
    status: int,
    detail: str,
    method: str,
    path: str,
) -> None:
    response = client.request(
        method, path, headers=headers, json=EVAL if method == "POST" else None
    )
    _problem(response, status, detail)
    assert response.json()["title"] == ("Unauthorized" if status == 401 else "Forbidden")
    assert _stored(runtime) == 0


def test_tenant_query_parameter_binds_like_the_header(client: TestClient) -> None:
    response = client.get(
        f"/api/v1/receipts?tenant_id={TENANT}", headers={**BEARER, "X-Helm-Principal-ID": PRINCIPAL}
    )
    assert response.status_code == 200


def test_no_admin_key_configured_always_401(make_runtime: RuntimeFactory, client_for) -> None:  # type: ignore[no-untyped-def]
    client = client_for(make_runtime(env={"HELM_ADMIN_API_KEY": ""}))
    _problem(client.get("/api/v1/receipts", headers=TENANT_HEADERS), 401,
             "Admin API key not configured (set HELM_ADMIN_API_KEY)")  # fmt: skip


def test_no_service_key_configured_always_401(make_runtime: RuntimeFactory, client_for) -> None:  # type: ignore[no-untyped-def]
    client = client_for(make_runtime(env={"HELM_SERVICE_API_KEY": ""}))
    _problem(client.post("/internal/policy/reconcile", headers={"Authorization": "Bearer anything"}), 401,
             "Service API key not configured (set HELM_SERVICE_API_KEY)")  # fmt: skip


# -- evaluate validation --------------------------------------------------------------------

BAD_BODIES = [
    (b"{not json", "Invalid JSON body"),
    (b"[1, 2]", "Invalid JSON body: expected an object"),
    (b'{"tool": "x", "effect_level": "E1", "session_id": "s", "args": {"n": NaN}}', "Invalid JSON body"),
    (b'{"effect_level": "E1", "session_id": "s"}', "Evaluate route tool and effect_level are required"),
    (b'{"tool": "x", "session_id": "s"}', "Evaluate route tool and effect_level are required"),
    (b'{"tool": "a", "action": "b", "effect_level": "E1", "session_id": "s"}', "Evaluate route tool and action conflict"),
    (b'{"tool": "a", "effect_level": "E1", "resource": "E2", "session_id": "s"}', "Evaluate route effect_level and resource conflict"),
    (b'{"tool": "a", "effect_level": "E1"}', "Evaluate route session_id is required (top level or context.session_id)"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "   "}', "Evaluate route session_id is required (top level or context.session_id)"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "a/b"}', "Evaluate route session_id must not contain '/', '\\' or NUL"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "a\\\\b"}', "Evaluate route session_id must not contain '/', '\\' or NUL"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "a\\u0000b"}', "Evaluate route session_id must not contain '/', '\\' or NUL"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "s", "context": {"session_id": "t"}}', "Evaluate route session_id and context.session_id conflict"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "s", "args": [1]}', "Evaluate route args must be an object"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "s", "context": "x"}', "Evaluate route context must be an object"),
    (b'{"tool": 5, "effect_level": "E1", "session_id": "s"}', "Evaluate route tool must be a string"),
    (b'{"tool": "a", "effect_level": "E1", "session_id": "s", "args": {"n": 9007199254740993}}', "Invalid JSON body: integer 9007199254740993 is outside ±(2^53-1)"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "detail"), BAD_BODIES)
def test_evaluate_rejects_bad_input_without_a_receipt(
    client: TestClient, runtime: Runtime, body: bytes, detail: str
) -> None:
    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, content=body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(detail)
    assert _stored(runtime) == 0


HOSTILE_JSON = [
    (b"[" * 60_000, "Invalid JSON body: nesting deeper than 64 levels"),
    (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "Invalid JSON body: nesting deeper than 64 levels"),
    (b'{"tool": "a", "tool": "b"}', "Invalid JSON body: duplicate key 'tool' in an object"),
    (b'{"args": [' + b"0," * 20_000 + b"0]}", "Invalid JSON body: an array has more than 10000 items"),
    (b'{"model": "\\ud800", "session_id": "\\udfff"}', "Invalid JSON body: a string contains a lone UTF-16 surrogate"),
    (b'{"n": ' + b"7" * 5000 + b"}", "Invalid JSON body: integer 7777"),
    (b'{"f": 1' + b"0" * 5000 + b'.5}', "Invalid JSON body: number 1000"),
]  # fmt: skip
JSON_ROUTES = ["/api/v1/evaluate", "/v1/chat/completions", "/api/v1/evidence/export"]


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize(("body", "detail"), HOSTILE_JSON)
def test_hostile_json_is_400_problem_on_every_json_route(
    make_runtime: RuntimeFactory,
    client_for,
    path: str,
    body: bytes,
    detail: str,  # type: ignore[no-untyped-def]
) -> None:
    runtime = make_runtime(env={"HELM_ENABLE_OPENAI_PROXY": "1"})
    response = client_for(runtime).post(path, headers=TENANT_HEADERS, content=body)
    assert response.status_code == 400, (path, response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith(detail), response.json()["detail"]
    assert _stored(runtime) == 0


def test_failed_auth_never_spends_the_claimed_principals_bucket(
    make_runtime: RuntimeFactory,
    client_for,  # type: ignore[no-untyped-def]
) -> None:
    client = client_for(
        make_runtime(env={"HELM_LIMIT_ACTOR_RPS": "0.001", "HELM_LIMIT_ACTOR_BURST": "2"})
    )
    spoofed = {**TENANT_HEADERS, "Authorization": "Bearer wrong"}
    refused = [client.get("/api/v1/receipts", headers=spoofed).status_code for _ in range(4)]
    assert refused == [401, 401, 429, 429]  # the failures spend their address's bucket
    assert client.get("/api/v1/receipts", headers=TENANT_HEADERS).status_code == 200
    assert client.get("/api/v1/receipts", headers=TENANT_HEADERS).status_code == 200


def test_unauthenticated_routes_are_limited_per_address_not_per_claimed_principal(
    make_runtime: RuntimeFactory,
    client_for,  # type: ignore[no-untyped-def]
) -> None:
    client = client_for(
        make_runtime(env={"HELM_LIMIT_ACTOR_RPS": "0.001", "HELM_LIMIT_ACTOR_BURST": "2"})
    )
    statuses = [
        client.post(
            "/api/v1/evidence/verify", headers={"X-Helm-Principal-ID": f"fresh-{n}"}, content=b"x"
        ).status_code
        for n in range(4)
    ]
    assert statuses[2:] == [429, 429], statuses  # a fresh header value is not a fresh bucket


def test_evaluate_body_over_1mib_is_413(client: TestClient, runtime: Runtime) -> None:
    huge = (
        b'{"tool": "a", "effect_level": "E1", "session_id": "s", "args": {"x": "'
        + b"a" * (1 << 20)
        + b'"}}'
    )
    assert client.post("/api/v1/evaluate", headers=TENANT_HEADERS, content=huge).status_code == 413
    assert _stored(runtime) == 0


def test_both_spellings_agree_and_authority_keys_are_stripped(
    client: TestClient, runtime: Runtime
) -> None:
    both = {**EVAL, "action": "file_read", "resource": "E1", "context": {"session_id": "s1", "principal_id": "root",
            "tenant_id": "evil", "workspace_id": "w"}}  # fmt: skip
    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=both).json()
    assert response["verdict"] == "ALLOW"
    receipt = client.get(
        f"/api/v1/receipts/{response['receipt_id']}", headers=TENANT_HEADERS
    ).json()
    assert receipt["executor_id"] == PRINCIPAL


@pytest.mark.parametrize(
    ("actions", "request_body", "verdict", "code", "reason"),
    [
        ([], {"action": "EXECUTE_TOOL", "resource": "unknown.tool.kind"}, "DENY", "PDP_DENY", "PDP_DENY (ref=helm:helm-chart)"),
        ([{"action": "E1"}], {"tool": "file_write", "effect_level": "E1"}, "DENY", "NO_POLICY_DEFINED",
         "NO_POLICY_DEFINED: no policy defined for action file_write"),
        ([{"action": "file_read", "expression": "input.effect.params.args.path == '/etc/hostname'"}],
         {"tool": "file_read", "effect_level": "E1", "args": {"path": "/etc/passwd"}}, "DENY", "MISSING_REQUIREMENT",
         "MISSING_REQUIREMENT: helm-chart:file_read:expression is false"),
        ([{"action": "file_read", "expression": "input.effect.params.missing.key == 1"}],
         {"tool": "file_read", "effect_level": "E1"}, "DENY", "PRG_EVALUATION_ERROR", None),
        ([{"action": "file_read", "expression": "'not a bool'"}],
         {"tool": "file_read", "effect_level": "E1"}, "DENY", "PRG_EVALUATION_ERROR", None),
        ([{"action": "file_read"}], {"tool": "file_read", "effect_level": "E1"}, "ALLOW", "", ""),
        ([{"action": "file_read", "enabled": False}], {"tool": "file_read", "effect_level": "E1"}, "DENY", "PDP_DENY", None),
        ([{"action": "unknown.tool.kind"}], {"action": "EXECUTE_TOOL", "resource": "unknown.tool.kind"}, "ALLOW", "", ""),
    ],
)  # fmt: skip
def test_decision_pipeline(
    make_runtime: RuntimeFactory, client_for, actions: list[dict[str, object]],  # type: ignore[no-untyped-def]
    request_body: dict[str, object], verdict: str, code: str, reason: str | None,
) -> None:  # fmt: skip
    runtime = make_runtime(actions)
    body = {**request_body, "session_id": "pipeline"}
    response = (
        client_for(runtime).post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body).json()
    )
    assert (response["verdict"], response["reason_code"], response["allow"]) == (
        verdict,
        code,
        verdict == "ALLOW",
    )
    if reason is not None:
        assert response["reason"] == reason
    assert _stored(runtime) == 1, "every decision, DENY included, writes a receipt"


def test_policy_not_ready_still_writes_a_receipt(runtime: Runtime, client: TestClient) -> None:
    snapshot = runtime.kernel.snapshots.get(runtime.scope)
    assert snapshot is not None
    runtime.kernel.snapshots.swap(
        snapshot.invalidated("last-known-good snapshot expired after 600s")
    )
    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL).json()
    assert (response["verdict"], response["reason_code"]) == ("DENY", "POLICY_NOT_READY")
    assert "expired" in response["reason"]
    assert _stored(runtime) == 1


def test_evaluate_response_shape(client: TestClient, runtime: Runtime) -> None:
    from helm_runbook.formats.canonical import canonical_json
    from helm_runbook.formats.keys import verify_hex

    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=EVAL).json()
    required = {
        "allow",
        "verdict",
        "receipt_id",
        "decision_id",
        "decision_hash",
        "reason_code",
        "policy_ref",
        "lamport_clock",
    }
    assert required <= response.keys()
    assert re.fullmatch(r"rcpt-[0-9a-f]{64}", response["receipt_id"])
    assert re.fullmatch(r"dec-[0-9a-f]{32}", response["decision_id"])
    assert response["id"] == response["decision_id"]
    assert (
        response["policy_ref"]
        == response["policy_version"]
        == runtime.kernel.snapshots.get(runtime.scope).policy_hash
    )  # type: ignore[union-attr]
    from helm_runbook.runtime.guardian import Decision
    from helm_runbook.runtime.kernel import decision_record

    decision = Decision(response["decision_id"], response["verdict"], response["reason_code"], response["reason"],
                        response["action"], response["resource"], response["policy_ref"])  # fmt: skip
    receipt = client.get(
        f"/api/v1/receipts/{response['receipt_id']}", headers=TENANT_HEADERS
    ).json()
    record = canonical_json(decision_record(decision, PRINCIPAL, receipt["args_hash"]))
    assert verify_hex(runtime.signer.public_key_hex, record, response["signature"])
    assert response["decision_hash"] == receipt["decision_hash"] == receipt["output_hash"]


# -- every route ----------------------------------------------------------------------------


def test_health_and_version_routes(client: TestClient) -> None:
    assert (client.get("/health").status_code, client.get("/health").text) == (200, "OK")
    assert client.get("/healthz").json() == {"status": "ok", "version": "0.8.4"}
    health = client.get("/api/health").json()
    assert set(health) == {
        "version",
        "commit",
        "helm_ai_kernel_version",
        "status",
        "build_time",
        "git_sha",
        "deployment_id",
    }
    for path in ("/version", "/api/v1/version"):
        assert set(client.get(path).json()) == {"version", "commit", "build_time", "go_version"}
    sent = client.get("/healthz", headers={"X-Request-ID": "req-42"})
    assert sent.headers["x-request-id"] == "req-42"
    assert sent.headers["x-content-type-options"] == "nosniff"
    assert sent.headers["x-frame-options"] == "DENY"


def test_health_port_answers_any_method_without_middleware() -> None:
    health = TestClient(create_health_app())
    for method in ("GET", "POST", "HEAD", "DELETE"):
        for path in ("/health", "/healthz"):
            response = health.request(method, path)
            assert response.status_code == 200
            assert "x-frame-options" not in response.headers
    assert health.get("/nope").text == "404 page not found\n"


def test_wrong_method_is_405_with_allow_and_unknown_path_is_404_text(client: TestClient) -> None:
    response = client.get("/api/v1/evaluate", headers=TENANT_HEADERS)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"
    missing = client.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.text) == (404, "404 page not found\n")


def test_receipt_and_proofgraph_routes(client: TestClient) -> None:
    for session in ("a", "a", "b"):
        client.post(
            "/api/v1/evaluate", headers=TENANT_HEADERS, json={**EVAL, "session_id": session}
        )
    listed = client.get("/api/v1/receipts", headers=TENANT_HEADERS).json()
    first = listed["receipts"][0]
    assert (
        client.get(f"/api/v1/receipts/{first['receipt_id']}", headers=TENANT_HEADERS).json()
        == first
    )
    _problem(
        client.get("/api/v1/receipts/rcpt-missing", headers=TENANT_HEADERS),
        404,
        "Receipt not found",
    )
    sessions = client.get("/api/v1/proofgraph/sessions", headers=TENANT_HEADERS).json()
    assert [(s["session_id"], s["receipt_count"], s["last_lamport_clock"]) for s in sessions] == [
        ("a", 2, 2),
        ("b", 1, 1),
    ]
    chain = client.get("/api/v1/proofgraph/sessions/a/receipts", headers=TENANT_HEADERS).json()
    assert [r["lamport_clock"] for r in chain] == [1, 2]
    assert (
        client.get("/api/v1/proofgraph/sessions/zzz/receipts", headers=TENANT_HEADERS).status_code
        == 404
    )
    from helm_runbook.formats.receipts import chain_hash

    by_hash = client.get(
        f"/api/v1/proofgraph/receipts/sha256:{chain_hash(first)}", headers=TENANT_HEADERS
    )
    assert by_hash.json()["receipt_id"] == first["receipt_id"]


def test_receipt_listing_pages_visit_every_receipt_once(client: TestClient) -> None:
    for n in range(7):
        client.post(
            "/api/v1/evaluate", headers=TENANT_HEADERS, json={**EVAL, "session_id": f"p{n % 2}"}
        )
    for params in ({"limit": 3}, {"limit": 2, "session_id": "p0"}):
        seen: list[str] = []
        cursor = ""
        for _ in range(10):
            page = client.get(
                "/api/v1/receipts",
                headers=TENANT_HEADERS,
                params={**params, **({"since": cursor} if cursor else {})},
            ).json()
            seen.extend(r["receipt_id"] for r in page["receipts"])
            assert page["count"] == len(page["receipts"])
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
        expected = 7 if "session_id" not in params else 4
        assert len(seen) == len(set(seen)) == expected
    by_verdict = client.get(
        "/api/v1/receipts", headers=TENANT_HEADERS, params={"verdict": "DENY"}
    ).json()
    assert by_verdict["count"] == 0
    for bad in ({"since": "garbage"}, {"since": "lamport:x", "session_id": "p0"}, {"from": "2026-01-01 00:00"},
                {"limit": "-1"}, {"since": "v1.!!!"}):  # fmt: skip
        assert (
            client.get("/api/v1/receipts", headers=TENANT_HEADERS, params=bad).status_code == 400
        ), bad


GARBAGE_QUERIES = [
    ("/api/v1/receipts", {"limit": "\u00b2"}, "limit must be an integer from 0 to 9223372036854775807"),
    ("/api/v1/receipts", {"limit": "\u0663"}, "limit must be an integer from 0 to 9223372036854775807"),
    ("/api/v1/receipts", {"limit": str(2**64)}, "limit must be an integer from 0 to 9223372036854775807"),
    ("/api/v1/proofgraph/sessions", {"offset": str(2**63)}, "offset must be an integer from 0 to 9223372036854775807"),
    ("/api/v1/proofgraph/sessions", {"limit": "\u00b3"}, "limit must be an integer from 0 to 9223372036854775807"),
    ("/api/v1/receipts", {"since": "lamport:\u00b2", "session_id": "s"}, "since=lamport:<n> must be an integer"),
    ("/api/v1/receipts", {"since": f"lamport:{2**64}", "session_id": "s"}, "since=lamport:<n> must be an integer"),
    ("/api/v1/receipts", {"from": "9999-12-31T23:59:59Z"}, "from must lie between 1677-09-21 and 2262-04-11"),
    ("/api/v1/receipts", {"to": "0001-01-01T00:00:00+23:59"}, "to must lie between 1677-09-21 and 2262-04-11"),
    ("/api/v1/receipts", {"from": "2026-02-30T00:00:00Z"}, "from: day is out of range for month"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "params", "detail"), GARBAGE_QUERIES)
def test_garbage_query_parameters_are_400(
    client: TestClient, path: str, params: dict[str, str], detail: str
) -> None:
    response = client.get(path, headers=TENANT_HEADERS, params=params)
    assert response.status_code == 400, (params, response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith(detail), response.json()["detail"]


def _big_receipts(runtime: Runtime, count: int, session: str) -> None:
    """Receipts of 1 MB each, as an older runtime (before names were capped) could store them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_sql, "MAX_STORED_RECEIPT_BYTES", 2 << 20)
        for n in range(count):
            runtime.kernel.evaluate(tenant_id="default", principal=PRINCIPAL, session_id=session,
                                    action=f"{n}" + "t" * 1_000_000, resource="E1", args=None,
                                    context={})  # fmt: skip


def test_a_receipt_listing_page_is_bounded_in_bytes_and_pages_reach_every_receipt(
    runtime: Runtime, client: TestClient
) -> None:
    _big_receipts(runtime, 10, "big")
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 1000}
    for _ in range(10):
        response = client.get("/api/v1/receipts", headers=TENANT_HEADERS, params=params)
        assert len(response.content) <= MAX_LISTING_BYTES + (64 << 10)
        page = response.json()
        seen += [r["receipt_id"] for r in page["receipts"]]
        if not page["has_more"]:
            break
        assert 0 < page["count"] < 10
        params["since"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 10
    too_big = client.get("/api/v1/proofgraph/sessions/big/receipts", headers=TENANT_HEADERS)
    assert too_big.status_code == 413
    assert "page through GET /api/v1/receipts?session_id=big" in too_big.json()["detail"]


def test_an_unhandled_error_logs_neither_the_body_nor_the_message(
    runtime: Runtime,
    client: TestClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def explode(**kwargs: object) -> None:
        raise LookupError(f"no luck with {kwargs}")

    monkeypatch.setattr(runtime.kernel, "evaluate_async", explode)
    body = {**EVAL, "args": {"card": "4111-1111-1111-SECRET"}}
    response = client.post("/api/v1/evaluate", headers=TENANT_HEADERS, json=body)
    assert response.status_code == 500
    logged = capsys.readouterr().err
    assert "unhandled error" in logged and "LookupError" in logged
    assert "SECRET" not in logged


@pytest.mark.parametrize(
    ("files", "data", "detail"),
    [
        ([("bundle", ("a.tar.gz", b"x", "application/gzip"))] * 2, {}, "Too many files. Maximum number of files is 1."),
        ([("bundle", ("a.tar.gz", b"x", "application/gzip"))], {f"f{n}": "v" for n in range(5)},
         "Too many fields. Maximum number of fields is 4."),
        ([("bundle", ("a.tar.gz", b"x", "application/gzip"))], {"note": "n" * (65 << 10)},
         "Part exceeded maximum size of 64KB."),
    ],
)  # fmt: skip
def test_multipart_uploads_are_bounded_in_parts_and_field_size(
    client: TestClient, files: list[object], data: dict[str, str], detail: str
) -> None:
    response = client.post("/api/v1/evidence/verify", files=files, data=data)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail


def test_every_api_route_is_covered_here() -> None:
    covered = {
        "/health", "/healthz", "/api/health", "/version", "/api/v1/version", "/api/v1/evaluate", "/api/v1/receipts",
        "/api/v1/receipts/{receipt_id}", "/api/v1/proofgraph/sessions",
        "/api/v1/proofgraph/sessions/{session_id}/receipts", "/api/v1/proofgraph/receipts/{receipt_hash}",
    }  # fmt: skip
    elsewhere = {  # covered by their own modules
        "/v1/chat/completions": "test_proxy.py",
        "/api/v1/evidence/export": "test_evidence_routes.py",
        "/api/v1/evidence/verify": "test_evidence_routes.py",
        "/api/v1/replay/verify": "test_evidence_routes.py",
        "/internal/policy/reconcile": "test_policy_rollout.py",
    }
    assert {spec.path for spec in API_ROUTES} == covered | set(elsewhere)
