"""One result shape: the receipt verifier and ``diagnose()`` return ``StepReport``s, render the
same table and record themselves as data (the run report and the tests read records)."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from helm_runbook.formats.keys import Signer
from helm_runbook.harness.results import StepReport
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
