"""The generated reference pages follow the code: a new env var, route, value or guard that the
pages would miss fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from helm_runbook.chart import CHART_DIR
from helm_runbook.chart.docs import value_docs
from helm_runbook.runtime.routes import API_ROUTES, HEALTH_ROUTES
from helm_runbook.site import envpage, reference, results
from tests.conftest import RuntimeFactory

RUNTIME = Path(envpage.__file__).parents[1] / "runtime"
ENV_LITERAL = re.compile(r'"((?:HELM|EVIDENCE|DATABASE|POD)_[A-Z0-9_]+)"')


def test_env_page_lists_every_variable_the_runtime_reads() -> None:
    literals = set()
    for module in ("settings.py", "limits.py"):
        literals |= set(ENV_LITERAL.findall((RUNTIME / module).read_text()))
    recorded = set(envpage.runtime_env_names())
    assert recorded == literals, "Settings.from_env and the names in settings.py/limits.py disagree"
    page = envpage.env_page()
    for name in recorded:
        assert f"| `{name}`{{.helm-identifier}} |" in page


#: Distinctive values: a variable that holds one of them (or reads a Secret named by one) is set
#: by that value, read straight from the rendered Deployment below.
GIVEN = {
    "service": {"healthPort": 18081, "metricsPort": 19090},
    "helm": {
        "production": True,
        "proxy": {"upstream": "https://llm.example/v1"},
        "signing": {"existingSecret": "acme-signing"},
        "auth": {
            "existingSecret": "acme-auth",
            "tenantID": "acme-tenant",
            "principalID": "acme-ops",
        },
        "limits": {"global": {"rps": 61, "burst": 121}, "actor": {"rps": 7}},
        "storage": {"type": "postgres", "postgres": {"existingSecret": "acme-db"}},
        "policy": {"source": {"pollInterval": "17s"}},
    },
}


def _leaves(values: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        out |= _leaves(value, path) if isinstance(value, dict) else {path: value}  # type: ignore[arg-type]
    return out


def _rows(page: str) -> dict[str, list[str]]:
    rows = {}
    for line in page.splitlines():
        if m := re.match(r"\| `([A-Z_0-9]+)`\{\.helm-identifier\} \| (.*) \| (.*) \|$", line):
            rows[m.group(1)] = [m.group(2), m.group(3)]
    return rows


def test_env_page_says_which_value_sets_each_variable_as_the_render_does() -> None:
    from helm_runbook.chart import render

    rows = _rows(envpage.env_page())
    env = render(CHART_DIR, GIVEN).get("Deployment")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    given = {str(v): path for path, v in _leaves(GIVEN).items() if not isinstance(v, bool)}
    checked = 0
    for entry in env:
        if entry["name"] not in rows:
            continue  # set by the chart, ignored by the runtime (listed below the table)
        ref = entry.get("valueFrom", {}).get("secretKeyRef", {})
        held = ref.get("name") if ref else entry.get("value")
        if held in given:
            assert f"`{given[held]}`" in rows[entry["name"]][0], (entry, rows[entry["name"]])
            checked += 1
    assert checked >= 10
    # The Secret a variable is read from is set by the value that fills it, not by the name of its key.
    admin = rows["HELM_ADMIN_API_KEY"][0]
    assert admin.startswith("`helm.auth.adminAPIKey`") and "`helm.auth.existingSecret`" in admin
    assert rows["EVIDENCE_SIGNING_KEY"][0].startswith("`helm.signing.key`")
    assert "`helm.storage.postgres.existingSecret`" in rows["DATABASE_URL"][0]


def test_values_changed_together_are_attributed_as_each_change_alone_is(monkeypatch: Any) -> None:
    """The env page changes values in batches: the same attribution as one render per value, in
    fewer renders, also where two values become the same text (both rps limits become 67) or
    several land in one variable (DATABASE_URL)."""
    import json

    import helm_runbook.chart as chart

    profile = envpage.ENV_PROFILES[0]
    base = chart.render(CHART_DIR, profile)
    env, secrets = envpage._env_entries(base), envpage._secret_data(base)
    defaults = dict(_leaves(yaml.safe_load((CHART_DIR / "values.yaml").read_text())))
    merged = defaults | dict(_leaves(profile))
    paths = ["helm.limits.global.rps", "helm.limits.actor.rps", "helm.limits.concurrency.max",
             "helm.limits.loadShed.lowPriorityMax", "helm.storage.postgres.host", "helm.storage.postgres.user",
             "helm.storage.postgres.database", "helm.storage.postgres.password", "helm.auth.tenantID",
             "helm.auth.workspaceID"]  # fmt: skip
    trials = [(i, path, envpage._perturbed(merged[path], [])) for i, path in enumerate(paths)]
    renders: list[int] = []
    real = chart.render
    monkeypatch.setattr(chart, "render", lambda *a, **k: renders.append(1) or real(*a, **k))

    def attributed(seen: list[Any]) -> dict[str, Any]:
        out = {name: envpage.EnvSource() for name in env}
        for _, path, new, env2, secrets2 in sorted(seen, key=lambda s: s[0]):
            envpage._attribute(out, path, new, env, secrets, env2, secrets2)
        return {name: source for name, source in out.items() if source != envpage.EnvSource()}

    alone = attributed([envpage._probe_alone(profile, trial) for trial in trials])
    singles, renders[:] = len(renders), []
    shown = json.dumps([env, secrets])
    batches = envpage._distinct_batches(trials)
    together = attributed(
        [
            s
            for batch in batches
            for s in envpage._probe_together(profile, batch, env, secrets, shown)
        ]
    )
    batched = len(renders)
    assert together == alone
    unsorted = attributed(envpage._probe_together(profile, trials, env, secrets, shown))
    assert unsorted == alone, "one batch holding equal new values splits until each change is clear"
    assert alone["HELM_LIMIT_GLOBAL_RPS"].direct == ["helm.limits.global.rps"]
    assert len(alone["DATABASE_URL"].direct) == 4
    assert batched <= len(batches) < singles, (batched, len(batches), singles)


def test_every_env_row_has_a_description() -> None:
    rows = _rows(envpage.env_page())
    assert set(rows) == set(envpage.runtime_env_names())
    assert not [name for name, (_, description) in rows.items() if not description.strip()]


def test_routes_page_is_the_route_table_the_app_serves(make_runtime: RuntimeFactory) -> None:
    from helm_runbook.runtime.app import create_app, create_health_app

    page = reference.routes_page()
    for route in (*API_ROUTES, *HEALTH_ROUTES):
        assert f"| `{route.path}`{{.helm-identifier}} |" in page
        assert f"`{route.operation_id}`{{.helm-identifier}}" in page
    served = {r.path for r in create_app(make_runtime()).app.routes}
    assert served == {r.path for r in API_ROUTES}
    assert {r.path for r in create_health_app(None).routes} == {r.path for r in HEALTH_ROUTES}


def test_values_page_documents_every_value_with_schema_enums() -> None:
    page = reference.values_page()
    for doc in value_docs(CHART_DIR / "values.yaml"):
        assert f"| `{doc.key}`{{.helm-identifier}} |" in page
    assert (
        '| `helm.policy.source.kind`{.helm-identifier} | string | `"mountedFile"` | `controlplane`, `crd`, `mountedFile` |'
        in page
    )
    # a table per section of values.yaml, in its order, each with its own header row
    sections = re.findall(r"^## (.+)$", page, re.M)
    assert sections[:3] == ["Top level", "image", "serviceAccount"]
    assert {"probes", "helm.policy", "helm.storage"} <= set(sections)
    assert page.count("| Key | Type | Default | Allowed | Description |") == len(sections)
    assert reference.values_section("replicaCount") == "Top level"
    assert reference.values_section("helm.production") == "helm"
    assert reference.values_section("helm.policy.source.kind") == "helm.policy"


def test_guards_page_shows_every_guard_refusing() -> None:
    refusals = reference.guard_refusals()
    assert refusals and all(
        "no longer refuses" not in line for _, lines in refusals for line in lines
    )
    page = reference.guards_page()
    validate = (CHART_DIR / "templates" / "_validate.tpl").read_text()
    fragments = re.findall(r'append \$msgs (?:\(printf )?"([^"%]{12,})', validate)
    assert len(fragments) >= 6
    assert len(reference.template_guards()) == validate.count("append $msgs"), (
        "a guard message was not extracted"
    )
    for fragment in fragments:
        assert fragment.split("{")[0][:40] in page, (
            f"guard {fragment!r} has no case on the guards page"
        )
    assert "refusing silent rotation" in page  # the init container's refusals


def test_results_page_and_banner_from_a_report() -> None:
    report = {
        "run": {"target": "local", "runtime_version": "rt 1", "chart_version": "0.8.4", "finished": "now"},
        "notebooks": [
            {"notebook": "01-a", "status": "passed", "duration_s": 1.0, "failure": None,
             "steps": [{"step": "chart.lint", "ok": True, "seconds": 0.5, "cell": 3},
                       {"step": "policy.wake", "ok": True, "seconds": 0.0, "cell": 5,
                        "values": {"skipped": "needs the stand-in control plane"}}]},
            {"notebook": "02-b", "status": "failed", "duration_s": 2.0, "steps": [],
             "failure": {"cell": 4, "error": "StepFailed", "message": "x"}},
        ],
    }  # fmt: skip
    page = results.results_page(report)
    passed, failed, skipped = ":material-check-circle:{ .helm-ok }", ":material-close-circle:{ .helm-failed }", ":material-skip-next-circle:{ .helm-skipped }"  # fmt: skip
    # a table per runbook, under its name (a phone lays out only the tables near the window)
    first, second = page.split("### 01-a\n")[1].split("### 02-b\n")
    assert f"| 3 | `chart.lint`{{.helm-identifier}} | {passed} passed | 0.50 s |" in first
    assert f"| 4 | StepFailed | {failed} failed | — |" in second
    # a step skipped on a cluster says so, never "passed"
    assert (
        f"| 5 | `policy.wake`{{.helm-identifier}} | {skipped} skipped: needs the stand-in control plane | 0.00 s |"
        in first
    )
    empty = results.results_page({"notebooks": [{"notebook": "03-c", "status": "passed", "duration_s": 0, "steps": []}]})  # fmt: skip
    assert "### 03-c\n\nNo step recorded." in empty
    assert not any(mark in page for mark in "✅❌⏭")  # icons, never emoji a font may lack
    ok = results.banner_html(report["notebooks"][0], report["run"])
    failed = results.banner_html(report["notebooks"][1], report["run"])
    assert "admonition success" in ok and "1 steps passed, 1 skipped on this target" in ok
    assert "admonition failure" in failed and "a step failed" in failed
    assert (
        yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
        == results.chart_versions()["chart"]
    )
