"""The runbooks as CI runs them: papermill executes every notebook against the local target;
the assertions read the recorded step values (never printed text), then the docs site builds."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nacl.signing import SigningKey

from helm_runbook import runner
from helm_runbook.formats.keys import Signer
from helm_runbook.harness.record import read_records
from helm_runbook.site.coverage import guide_coverage

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
PARAMETER_LINE = re.compile(r"^[a-z_]+: (str|int|float|bool) = .+  # .+$")


@pytest.mark.parametrize("path", runner.notebooks(), ids=lambda p: p.stem)
def test_committed_notebooks_are_clean_and_document_their_parameters(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        assert not cell.get("outputs") and not cell.get("execution_count"), (
            f"{path.name} has outputs"
        )
        tags = cell.metadata.get("tags", [])
        assert set(tags) <= {"parameters", "remove-cell", "remove-input"}, tags
        assert "injected-parameters" not in tags
    parameters = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    for line in parameters[0].source.splitlines():
        assert PARAMETER_LINE.match(line), (
            f"{path.name}: parameter line not in `name: type = default  # help` form: {line}"
        )
    # papermill parses every line (one it cannot parse is silently not a parameter: `-p` and the
    # runner could not set it; a quote or `=` in the help text does that)
    assert len(runner.declared_parameters(path)) == len(parameters[0].source.splitlines())


def _values(run: dict[str, Any], notebook: str, step: str) -> list[dict[str, Any]]:
    records = read_records(run["build"] / "runbooks" / f"{notebook}.ipynb")
    return [r["values"] for r in records if r["step"] == step and r["ok"]]


def test_every_runbook_passes_and_records_its_steps(run: dict[str, Any]) -> None:
    assert run["code"] == 0
    assert [e["notebook"] for e in run["report"]["notebooks"]] == [
        p.stem for p in runner.notebooks()
    ]
    assert all(e["status"] == "passed" for e in run["report"]["notebooks"])
    assert (run["build"] / "runbook-report.xml").read_text().count("<testcase") >= 12


def test_chart_lint_runbook(run: dict[str, Any]) -> None:
    [render] = _values(run, "01-chart-lint", "chart.render")
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim"} <= set(
        render["kinds"]
    )
    [refusal] = _values(run, "01-chart-lint", "chart.refusal")
    refusals = " ".join(refusal["refusals"])
    for value in ("helm.signing", "helm.auth"):  # both missing key materials are named
        assert value in refusals, refusals


def test_the_guides_production_skeletons_run_as_written_and_every_added_flag_is_explained(
    run: dict[str, Any],
) -> None:
    guides = _values(run, "01-chart-lint", "chart.guide")
    assert [g["section"] for g in guides] == ["Production Install Skeleton (inline values)",
                                              "Production Install Skeleton (existing Secrets)"]  # fmt: skip
    assert all(
        g["production"] and "points at no real upstream" in " ".join(g["notes_warnings"])
        for g in guides
    )
    coverage = guide_coverage(run["report"])
    installs = [c for c in coverage if c.command.step == "install"]
    assert installs and all(c.as_written for c in installs)  # runbook 01, verbatim
    assert all(c.covered for c in coverage)
    assert [(c.command.section, c.unexplained()) for c in coverage if c.unexplained()] == []
    page = (run["site"] / "guide-coverage" / "index.html").read_text()
    assert "run as written" in page and "run with added flags" in page and "because" in page


def test_the_ingress_answer_is_served_by_nginx(run: dict[str, Any]) -> None:
    [ingress] = _values(run, "09-observability-ingress", "ingress")
    assert ingress["served_by"].startswith("nginx")  # the runtime sends no Server header of its own


def test_smoke_runbook(run: dict[str, Any]) -> None:
    for smoke in _values(run, "04-smoke-checks", "smoke"):  # before and after the reinstall
        assert (smoke["evaluate_verdict"], smoke["evaluate_reason"]) == ("DENY", "PDP_DENY")
        assert (smoke["proxy_verdict"], smoke["proxy_receipt"]) == ("ALLOW", True)
    before, after, reinstalled = _values(run, "04-smoke-checks", "receipts.verify")
    # verified against the trust root derived here from the signing Secret, independently
    state = json.loads((run["build"] / "local-target" / "state.json").read_text())
    seed = bytes.fromhex(base64.b64decode(state["secrets"]["helm-signing"]["signing-key"]).decode())
    trust_root = Signer.fingerprint_of(SigningKey(seed).verify_key)
    assert before["trust_root"] == after["trust_root"] == reinstalled["trust_root"] == trust_root
    assert reinstalled["receipts"] > after["receipts"] >= before["receipts"] >= 2
    [restart] = _values(run, "04-smoke-checks", "restart")
    assert restart["restarts"] >= 1
    [uninstalled] = _values(run, "04-smoke-checks", "uninstall")
    assert uninstalled["kept"] == ["PersistentVolumeClaim/helm-ai-kernel-data"]


def test_the_install_runbook_shows_the_command_it_applied(run: dict[str, Any]) -> None:
    [install] = _values(run, "03-production-install", "install")
    command = install["command"]
    for flag in ("--set helm.production=true", "--set helm.signing.existingSecret=helm-signing",
                 "--set helm.auth.existingSecret=helm-auth", "--set helm.proxy.upstream=http://127.0.0.1:",
                 "--set-json 'helm.policy.runtimeActions=[{\"action\":\"LLM_INFERENCE\""):  # fmt: skip
        assert flag in command


def test_policy_rollout_runbook(run: dict[str, Any]) -> None:
    records = read_records(run["build"] / "runbooks" / "05-policy-rollout.ipynb")
    story = [(r["step"], r["values"].get("verdict") or r["values"].get("reconcile_status")) for r in records
             if r["step"] in ("policy.verdict", "policy.wake")]  # fmt: skip
    assert story == [
        ("policy.verdict", "DENY"),  # signed initial policy: file_read not allowed
        ("policy.wake", "ok"),  # signed change reconciled once the mount synced
        ("policy.verdict", "ALLOW"),
        ("policy.wake", "validate_error"),  # tampered change refused
        ("policy.verdict", "DENY"),  # shell: the widening never took effect
        ("policy.verdict", "ALLOW"),  # the previous policy keeps serving
        ("policy.wake", "ok"),  # the last good signed policy published again, reloaded
        ("policy.verdict", "ALLOW"),
        ("policy.verdict", "DENY"),
    ]
    published = [r["values"] for r in records if r["step"] == "policy.publish"]
    wakes = [r["values"] for r in records if r["step"] == "policy.wake"]
    # each wake answered about the files it was published with (the kubelet's sync waited out)
    assert [w["desired_policy_hash"] for w in wakes] == [p["policy_hash"] for p in published[1:]]
    assert published[-1]["policy_hash"] == published[1]["policy_hash"] == wakes[-1]["policy_hash"]
    pods = [r["values"] for r in records if r["step"] == "pod"]
    assert len(pods) == 2 and pods[0]["pod"] == pods[1]["pod"] and pods[1]["same_as_before"]


def test_no_secret_reaches_an_executed_notebook_the_report_or_the_site(run: dict[str, Any]) -> None:
    state = json.loads((run["build"] / "local-target" / "state.json").read_text())
    values = [
        base64.b64decode(v).decode()
        for data in state["secrets"].values()
        for k, v in data.items()
        if k != "HELM_POLICY_TRUST_PUBLIC_KEY"  # a public key: runbook 05 passes it inline
    ]
    found = len(values)  # never let pytest's introspection print the values themselves
    assert found >= 3, "expected the signing seed and both API keys"
    artefacts = [*run["build"].joinpath("runbooks").glob("*.ipynb"), run["build"] / "runbook-report.json",
                 *run["site"].rglob("*.html")]  # fmt: skip
    assert len(artefacts) > 6
    for artefact in artefacts:
        text = artefact.read_text(errors="replace")
        leaked = sum(value in text for value in values)
        assert leaked == 0, f"{leaked} secret value(s) leaked into {artefact.name}"


def test_published_pages_show_no_machine_path_ansi_code_or_stderr(run: dict[str, Any]) -> None:
    executed = sorted(run["build"].joinpath("runbooks").glob("*.ipynb"))
    for path in [*executed, *run["site"].rglob("*.html")]:
        text = path.read_text(errors="replace")
        assert str(runner.ROOT) not in text, f"{path.name} shows the build machine's checkout path"
        assert "\x1b[" not in text and "\\u001b[" not in text, f"{path.name} has ANSI codes"
    for path in executed:
        for cell in nbformat.read(path, as_version=4).cells:
            streams = [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]
            assert streams == [], f"{path.name}: stderr output {streams[0]['text'][:200]!r}"


def test_the_site_shows_executed_runbooks(run: dict[str, Any]) -> None:
    page = (run["site"] / "runbooks" / "04-smoke-checks" / "index.html").read_text()
    assert "deployment guide smoke checks" in page and "PASS" in page
    assert "fonts.googleapis.com" not in page


def test_a_failed_cell_reports_the_step_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "EXECUTED", tmp_path)
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "wd")
    entry = runner.execute(
        runner.NOTEBOOKS / "02-secret-setup.ipynb", target="prod-cluster", cell_timeout=60
    )
    assert entry["status"] == "failed"
    failure = entry["failure"]
    assert failure["error"] == "TargetUnavailable", failure
    assert "prod-cluster" in failure["message"] and "fix:" not in failure["message"]
    assert failure["fix"] and failure["cell"] >= 1
    outputs = (
        nbformat.read(tmp_path / "failed" / "02-secret-setup.ipynb", as_version=4)
        .cells[failure["cell"]]
        .outputs
    )
    [error] = [o for o in outputs if o.output_type == "error"]
    assert error.traceback == [f"TargetUnavailable: {failure['message']}", f"fix: {failure['fix']}"]


def test_upgrade_rollback_runbook_recovers_a_failed_upgrade_without_losing_a_receipt(
    run: dict[str, Any],
) -> None:
    book = "08-upgrade-rollback"
    records = read_records(run["build"] / "runbooks" / f"{book}.ipynb")
    story = [
        (r["step"], r["values"].get("status"))
        for r in records
        if r["step"] in ("upgrade", "rollback")
    ]
    assert story == [("upgrade", "deployed"), ("upgrade", "failed"), ("rollback", "deployed")]
    good, failed = _values(run, book, "upgrade")
    assert good["claims"] == ["helm-ai-kernel-data"]
    assert failed["finding"] == "readiness" and "9191" in failed["finding_seen"]
    [rolled_back] = _values(run, book, "rollback")
    assert rolled_back["rolled_back_to"] == good["revision"]
    histories = _values(run, book, "history")
    assert len(histories) == 4 and histories[-1]["deployed"] == rolled_back["revision"]
    assert histories[2]["statuses"][-2:] == [
        "deployed",
        "failed",
    ]  # the good one stays until rollback
    assert histories[3]["statuses"][-2:] == ["failed", "deployed"]
    diffs = _values(run, book, "diff")
    assert any("HELM_METRICS_ENABLED" in f for f in diffs[0]["fields"])
    assert [f.split(":", 1)[1] for f in diffs[1]["fields"]] == [
        "spec.template.spec.containers[helm-ai-kernel].readinessProbe.httpGet.port"
    ]
    kept = _values(run, book, "receipts.kept")
    # Listed may exceed acknowledged, never by more than the requests without an answer (stored,
    # but the 2 s client timeout ran out under load) and the one in flight at the snapshot.
    assert all(k["lost"] == 0 for k in kept)
    assert all(
        k["acknowledged"] <= k["listed"] <= k["acknowledged"] + k["unanswered"] + 1 for k in kept
    ), kept
    assert kept[-1]["acknowledged"] > kept[0]["acknowledged"] > 0
    verified = _values(run, book, "receipts.verify")
    assert [v["receipts"] for v in verified] == sorted(v["receipts"] for v in verified)
    [continuity] = _values(run, book, "signing.continuity")
    assert continuity["refused"] is True
    assert {v["trust_root"] for v in verified} == {continuity["trust_root"]}


def test_troubleshooting_runbook_proves_every_row_of_the_guide(run: dict[str, Any]) -> None:
    from helm_runbook.steps.troubleshoot import FAULTS
    from helm_runbook.tools.diagnose import GUIDE

    records = read_records(run["build"] / "runbooks" / "06-troubleshooting.ipynb")
    assert set(FAULTS) == set(GUIDE), "every row of the guide's table has a fault in the lab"
    diagnoses = [r["values"]["problems"] for r in records if r["step"] == "diagnose"]
    assert diagnoses[0] == [] and diagnoses[-1] == [], (
        "healthy before the first fault and after the last fix"
    )
    for fault in FAULTS:
        steps = [
            r["step"]
            for r in records
            if r["values"].get("fault") == fault or r["step"].endswith(f".{fault}")
        ]
        assert steps == [f"fault.{fault}", f"symptom.{fault}", f"fix.{fault}"], steps
        index = next(i for i, r in enumerate(records) if r["step"] == f"symptom.{fault}")
        diagnosis = next(r for r in records[index:] if r["step"] == "diagnose")
        assert fault in diagnosis["values"]["problems"], (fault, diagnosis["values"])
    signature = next(r for r in records if r["step"] == "symptom.policy-signature")
    assert signature["values"]["seen"]["reconcile_status"] == "validate_error"
    assert "signature" in signature["values"]["seen"]["reason"]


@pytest.mark.parametrize(
    ("notebook", "first"),
    [("03-production-install", "02-secret-setup"), ("04-smoke-checks", "03-production-install")],
)
def test_a_runbook_run_too_early_names_the_runbook_to_run_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notebook: str, first: str
) -> None:
    """By hand, in the wrong order, on an empty local target: the first step that needs an
    earlier runbook's work fails with one line naming that runbook."""
    monkeypatch.setattr(runner, "EXECUTED", tmp_path)
    monkeypatch.setattr(runner, "WORKDIR", tmp_path / "empty-target")
    entry = runner.execute(runner.NOTEBOOKS / f"{notebook}.ipynb", target="local", cell_timeout=60)
    assert entry["status"] == "failed"
    assert first in entry["failure"]["fix"], entry["failure"]
    # nothing ran before the step that needs the earlier runbook but reading the run profile
    assert [s["step"] for s in entry["steps"]] == ["profile"], entry["steps"]


def test_control_plane_runbook(run: dict[str, Any]) -> None:
    records = read_records(run["build"] / "runbooks" / "07-control-plane-install.ipynb")
    # a version is "ok" once live: loaded by the wake hint, or by the poll in the moment before it
    story = [(r["step"], r["values"].get("verdict") or (r["values"].get("loaded_by") and "ok")
              or r["values"].get("reconcile_status")
              or r["values"].get("fault") or r["values"].get("policy_epoch")) for r in records
             if r["step"] in ("policy.verdict", "policy.wake", "policy.await", "controlplane.publish")]  # fmt: skip
    # and the wake hint itself loaded at least one of them (the poll can win the race only rarely)
    assert "wake hint" in [
        r["values"].get("loaded_by") for r in records if r["step"] == "policy.wake"
    ]
    assert story == [
        ("controlplane.publish", 1),
        ("policy.verdict", "DENY"),  # the control plane's first version decides
        ("controlplane.publish", 2),
        ("policy.wake", "ok"),  # live at once after the wake hint
        ("policy.verdict", "ALLOW"),
        ("controlplane.publish", 3),
        ("policy.await", "ALLOW"),  # live within the poll interval, no hint
        ("controlplane.publish", "unsigned"),
        ("policy.wake", "validate_error"),
        ("controlplane.publish", "tampered"),
        ("policy.wake", "validate_error"),
        ("controlplane.publish", "wrong-hash"),
        ("policy.wake", "validate_error"),
        ("policy.verdict", "ALLOW"),  # the previous policy keeps deciding
        ("controlplane.publish", 7),
        ("policy.wake", "ok"),
        ("policy.wake", "source_error"),  # control plane down
        ("policy.verdict", "ALLOW"),  # last-known-good serves
        ("policy.await", "DENY"),  # ...until lastKnownGoodMaxAge, then everything is denied
        ("policy.wake", "ok"),  # back up: recovers
        ("policy.verdict", "ALLOW"),
        ("policy.wake", "source_error"),  # the pod's token refused
        ("policy.wake", "no_change"),
    ]
    waits = _values(run, "07-control-plane-install", "policy.await")
    assert waits[0]["waited_s"] <= waits[0]["within_s"]
    assert waits[1]["reason"].startswith("last-known-good snapshot expired after")
    reasons = [v["reason"] for v in _values(run, "07-control-plane-install", "policy.wake")]
    assert any("signature required" in r for r in reasons)
    assert any("HELM_POLICY_BEARER_TOKEN" in r and "was refused" in r for r in reasons)
    install = _values(run, "07-control-plane-install", "install")[0]["command"]
    for flag in ("helm.policy.source.kind=controlplane", "helm.policy.signature.required=true",
                 "helm.policy.signature.existingSecret=helm-policy-trust",
                 "helm.signing.existingSecret=helm-signing", "helm.auth.existingSecret=helm-auth"):  # fmt: skip
        assert flag in install


def test_every_shell_command_of_the_guide_is_executed_by_a_runbook(run: dict[str, Any]) -> None:
    from helm_runbook.site.coverage import guide_coverage

    coverage = guide_coverage(run["report"])
    assert len(coverage) >= 11
    missing = [item.command.command.splitlines()[0] for item in coverage if not item.covered]
    assert missing == [], "guide commands no runbook cell executed"
    page = (run["site"] / "guide-coverage" / "index.html").read_text()
    assert f"{len(coverage)} of {len(coverage)} shell commands" in page
    overview = (run["site"] / "index.html").read_text()
    assert f"Guide coverage:</strong> {len(coverage)} of {len(coverage)}" in overview


def test_observability_runbook_counts_agree_with_the_receipts(run: dict[str, Any]) -> None:
    book = "09-observability-ingress"
    [job] = _values(run, book, "metrics.prometheus")
    assert (job["port"], job["path"], job["interval"], job["up"]) == (
        "metrics",
        "/metrics",
        "250ms",
        1,
    )
    [burst] = _values(run, book, "metrics.burst")
    [figures] = _values(run, book, "metrics.figures")
    receipts = burst["receipts"]
    assert sum(receipts.values()) == burst["requests"] and {"ALLOW", "DENY"} <= set(receipts)
    counted = figures["prometheus"]
    assert (counted["ALLOW"], counted["DENY"]) == (receipts["ALLOW"], receipts["DENY"])
    assert counted["decisions"] == counted["histogram"] == burst["requests"]
    assert figures["reconcile_status"] in ("ok", "no_change") and figures["rate_per_s"] > 0
    assert figures["scrapes_during_burst"] >= 2, "the chart's curve needs scrapes inside the burst"
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    outputs = [o for cell in nbformat.read(run["build"] / "runbooks" / f"{book}.ipynb", as_version=4).cells
               for o in cell.get("outputs", [])]  # fmt: skip
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        "the burst chart is in the notebook"
    )
    [ingress] = _values(run, book, "ingress")
    assert (ingress["health"], ingress["governed_verdict"], ingress["untrusted"]) == (
        200, "DENY", "CERTIFICATE_VERIFY_FAILED")  # fmt: skip


def test_equivalent_commands_blocks_show_only_commands_their_notebook_ran(
    run: dict[str, Any], tmp_path: Path
) -> None:
    """Each "Equivalent commands" block against the commands the notebook's own passed steps
    recorded (``StepReport.command``); then the same check on a copy with an invented command."""
    from helm_runbook.site.coverage import equivalent_commands, unexecuted_equivalents

    executed = sorted(run["build"].joinpath("runbooks").glob("*.ipynb"))
    checked = [p.stem for p in executed if equivalent_commands(p)]
    assert len(checked) >= 7, checked
    shown = {p.stem: unexecuted_equivalents(p) for p in executed}
    assert {k: v for k, v in shown.items() if v} == {}, (
        "commands shown that no cell of the notebook ran"
    )
    doc = json.loads((run["build"] / "runbooks" / "07-control-plane-install.ipynb").read_text())
    first = doc["cells"][0]
    first["source"] = "".join(first["source"]).replace(
        "```bash\n", "```bash\nkubectl delete pvc helm-ai-kernel-data\n", 1
    )
    invented = tmp_path / "07-control-plane-install.ipynb"
    invented.write_text(json.dumps(doc))
    assert unexecuted_equivalents(invented) == ["cell 0: kubectl delete pvc helm-ai-kernel-data"]
