"""HTTP handlers, one module per job: parse → service call → response. No SQL, no env reads
(those live elsewhere).

Each handler receives the request and the authorised ``Identity``; it raises ``ProblemError``
for client mistakes. Shapes follow ``runtime/openapi.yaml``; ``routes.py`` maps paths to the
names exported here.
"""

from helm_runbook.runtime.handlers.common import CompactJSON, checked_id, read_json_object
from helm_runbook.runtime.handlers.evidence import evidence_export, evidence_verify, replay_verify
from helm_runbook.runtime.handlers.governance import evaluate
from helm_runbook.runtime.handlers.health import api_health, healthz, plain_ok, version
from helm_runbook.runtime.handlers.receipts import (
    decode_cursor,
    encode_cursor,
    get_receipt,
    list_receipts,
    non_negative_int,
    parse_time_ns,
    proofgraph_receipt,
    proofgraph_session_receipts,
    proofgraph_sessions,
)
from helm_runbook.runtime.handlers.reconcile import policy_reconcile

__all__ = [
    "CompactJSON",
    "api_health",
    "checked_id",
    "decode_cursor",
    "encode_cursor",
    "evaluate",
    "evidence_export",
    "evidence_verify",
    "get_receipt",
    "healthz",
    "list_receipts",
    "non_negative_int",
    "parse_time_ns",
    "plain_ok",
    "policy_reconcile",
    "proofgraph_receipt",
    "proofgraph_session_receipts",
    "proofgraph_sessions",
    "read_json_object",
    "replay_verify",
    "version",
]
