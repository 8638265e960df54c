"""What every handler shares: the runtime behind a request, the compact JSON response, the
bounded JSON body reader and the rule for names a caller chooses (``proxy.py`` uses the last
two as well)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from helm_runbook.formats.json_reader import parse_json
from helm_runbook.runtime.limits import JSON_PARSER_BUSY, MAX_ID_BYTES, WorkersBusy
from helm_runbook.runtime.problems import ProblemError

if TYPE_CHECKING:
    from helm_runbook.runtime.context import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # one, not one per response


class CompactJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return _COMPACT.encode(content).encode("utf-8")


_PARSE_OFF_LOOP_BYTES = 256 << 10  # bigger bodies parse in the bounded parse workers


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body (already read under the route's byte cap) as a JSON object, or a 400 problem
    naming what is wrong."""
    body = await request.body()
    try:
        if len(body) > _PARSE_OFF_LOOP_BYTES:
            value = await runtime_of(request).parse_workers.run(parse_json, body)
        else:
            value = parse_json(body)
    except WorkersBusy as exc:
        raise ProblemError(
            503, f"{JSON_PARSER_BUSY}: large JSON bodies are being parsed ({exc}); retry",
            headers={"Retry-After": "1", "X-Helm-Limiter-Reason": JSON_PARSER_BUSY},
        ) from None  # fmt: skip
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise ProblemError(400, "Invalid JSON body: expected an object")
    return value


_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space; the length is checked apart
_SESSION_ID = re.compile(r"[\x21-\x2e\x30-\x5b\x5d-\x7e]+")  # the same without / and \\


def checked_id(name: str, value: object, *, session: bool = False) -> str:
    """A name the caller chose (session, principal, model, tool, ...), or a 400 naming the field:
    1 to ``MAX_ID_BYTES`` bytes of printable ASCII without spaces; a session id also without
    ``/`` and ``\\`` (it names a chain and an export file). Receipts carry these names, so the
    caps keep every receipt small enough to export and verify."""
    if not isinstance(value, str):
        raise ProblemError(400, f"{name} must be a string")
    pattern = _SESSION_ID if session else _ID
    if len(value) > MAX_ID_BYTES or not pattern.fullmatch(value):
        rule = f"must be 1 to {MAX_ID_BYTES} bytes of printable ASCII without spaces"
        if session:
            rule = f"must not contain '/', '\\' or NUL and {rule[len('must ') :]}"
        raise ProblemError(400, f"{name} {rule} (got {len(value)} characters)")
    return value
