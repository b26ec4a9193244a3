"""Errors the channels' HTTP side answers: RFC 9457 problems naming the field that is wrong,
as the admin API's do. Raise `Problem` in a route; the service turns it into the answer."""

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

logger = logging.getLogger("switchboard.channels")


class Problem(Exception):
    def __init__(
        self, status: int, title: str, *, field: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.field, self.code = status, title, field, code
        self.headers: dict[str, str] = {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.code:
            body["code"] = self.code
        if self.field:
            body["errors"] = [{"field": self.field, "message": self.title}]
        return JSONResponse(
            body, self.status, headers=self.headers, media_type="application/problem+json"
        )


async def problem_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return exc.response()


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A route's read or write that the database did not take (a timeout, a lost primary) is
    a 503 the caller may retry, not a bare 500; nothing was half-done (each route writes one
    document)."""
    logger.warning("%s %s: the database failed: %s", request.method, request.url.path, exc)
    problem = Problem(503, "the database is unavailable; try again", code="unavailable")
    problem.headers["Retry-After"] = "1"
    return problem.response()
