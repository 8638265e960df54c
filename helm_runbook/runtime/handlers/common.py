"""What every handler shares: the runtime behind a request, the compact JSON response, the
bounded JSON body reader and the session-id rule (``proxy.py`` uses the last two as well)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from helm_runbook.runtime.json_reader import parse_json
from helm_runbook.runtime.problems import ProblemError

if TYPE_CHECKING:
    from helm_runbook.runtime.context import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class CompactJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_PARSE_OFF_LOOP_BYTES = 256 << 10  # bigger bodies parse in a thread: health probes keep answering


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body (already read under the route's byte cap) as a JSON object, or a 400 problem
    naming what is wrong."""
    body = await request.body()
    try:
        if len(body) > _PARSE_OFF_LOOP_BYTES:
            value = await asyncio.to_thread(parse_json, body)
        else:
            value = parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise ProblemError(400, "Invalid JSON body: expected an object")
    return value


def valid_session_id(session_id: str) -> bool:
    return bool(session_id.strip()) and not any(c in session_id for c in "/\\\x00")
