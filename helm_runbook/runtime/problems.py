"""RFC 7807 ``application/problem+json`` responses, as upstream writes them (docs/upstream-contract.md#errors)."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.responses import Response

INTERNAL_DETAIL = "An unexpected error occurred. Please try again later."


class ProblemResponse(Response):
    media_type = "application/problem+json"


def problem(
    status: int,
    detail: str,
    *,
    instance: str = "",
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response; ``title`` defaults to the HTTP reason phrase."""
    body: dict[str, object] = {
        "type": f"https://helm.mindburn.run/errors/{status}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    return ProblemResponse(
        json.dumps(body, separators=(",", ":")), status_code=status, headers=headers
    )


class ProblemError(Exception):
    """Raised inside a handler to answer with a problem response."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
