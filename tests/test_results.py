"""One result shape: the receipt verifier and ``diagnose()`` return ``StepReport``s, render the
same table and record themselves as data (the run report and the tests read records)."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from helm_runbook.formats.keys import Signer
from helm_runbook.harness.results import StepReport, cell_html, shortened, shown_command
from helm_runbook.targets.local import LocalTarget
from helm_runbook.tools.diagnose import SYMPTOMS, Diagnosis, diagnose
from helm_runbook.tools.verify import ReceiptVerification, verify_receipts


def test_a_receipt_verification_is_a_step_report_with_its_counts_as_values() -> None:
    key = Signer(SigningKey.generate()).public_key_hex
    forged = {"receipt_id": "r1", "session_id": "s", "lamport_clock": 1, "signature_version": "v4"}
    report = verify_receipts([forged], key)
    assert isinstance(report, ReceiptVerification) and isinstance(report, StepReport)
    assert not report.ok and report.seconds > 0
    recorded = report.as_record()
    assert recorded["step"] == "receipts.verify" and recorded["ok"] is False
    head = report.chains["s"].head
    assert recorded["values"] == {"receipts": 1, "sessions": 1, "failures": 1,
                                  "trust_root": report.public_key_fingerprint,
                                  "chains": {"s": {"count": 1, "head": head}}}  # fmt: skip
    # the failure is a typed field and a row of the common table
    assert [f.check for f in report.failures] == ["signature_version"]
    assert report.table().rows == [["r1", "s", 1, "signature_version", report.failures[0].detail]]
    assert str(report).startswith("receipts.verify: receipt verification: FAIL")


def test_a_diagnosis_is_a_step_report_whose_record_names_its_problems(tmp_path: Path) -> None:
    result = diagnose(LocalTarget(tmp_path), values={"helm": {"production": True}})
    assert isinstance(result, Diagnosis) and isinstance(result, StepReport)
    assert result.table().columns == ("check", "status", "seen", "fix")
    assert [row[0] for row in result.rows] == list(SYMPTOMS)
    assert str(result).startswith("diagnose: troubleshooting checks: FAIL (render")
    recorded = result.as_record()
    # a diagnosis that found a problem is a step that ran: the finding is in the values
    assert recorded["ok"] is True
    assert recorded["values"] == {"problems": ["render"], "checks": len(SYMPTOMS)}


def test_a_fault_the_runbook_injected_reads_as_detected_not_as_a_broken_run(tmp_path: Path) -> None:
    """Runbook 06 injects a fault and requires diagnose() to find it: the table says so, in blue,
    never a red FAIL under a green "all steps passed" banner; an unexpected problem stays FAIL."""
    result = diagnose(LocalTarget(tmp_path), values={"helm": {"production": True}})
    assert (
        "var(--helm-failed-color,#cf222e)" in result._repr_html_()
        and ">FAIL<" in result._repr_html_()
    )
    result.require("render")
    shown = result._repr_html_()
    # the site's colour for its scheme (light or dark), the light one where the site's CSS is absent
    assert "FAULT INJECTED → DETECTED" in shown and ">FAIL<" not in shown
    assert "color:var(--helm-expected-color,#0550ae)" in shown
    assert str(result).startswith("diagnose: troubleshooting checks: FAULT INJECTED → DETECTED")
    assert result.as_record()["values"] == {"problems": ["render"], "checks": len(SYMPTOMS)}
    # the fix column's `code spans` are code, the guard messages end once ("material; helm...")
    assert "<code>helm.signing.existingSecret</code>" in shown and "`" not in shown
    assert ".;" not in shown


def test_cells_are_cut_between_words_and_commands_show_what_a_port_is() -> None:
    text = "helm.production=true requires helm.auth.adminAPIKey: protected APIs fail closed without admin auth"
    cut = shortened(text, 90)
    assert cut.endswith("closed without…") and len(cut) <= 90 and shortened("short", 90) == "short"
    command = ("helm upgrade --install r deploy/helm-chart --set helm.proxy.upstream=http://127.0.0.1:56663/v1 "
               "--set helm.policy.source.controlplane.url=http://127.0.0.1:40001; curl http://127.0.0.1:38211/health")  # fmt: skip
    report = StepReport("install", "t", ["a"], command=command)
    assert "127.0.0.1:56663" not in report._repr_html_() and "56663" not in str(report)
    assert "helm.proxy.upstream=&lt;stand-in upstream&gt;" in report._repr_html_()
    assert "controlplane.url=<stand-in control plane>" in shown_command(command)
    assert "curl http://127.0.0.1:<port>/health" in shown_command(command)
    assert report.as_record()["command"] == command  # what the coverage checks read is untouched
    assert cell_html("a <b> `x.y`") == "a &lt;b&gt; <code>x.y</code>"
