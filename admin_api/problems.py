"""Errors as RFC 9457 problem details (`application/problem+json`), one shape everywhere.

A problem says what went wrong in words an operator can act on; validation problems add
`errors`, one per field with its dotted path (`llm.temperature`). Submitted values are never
echoed back: a rejected value may be the very secret the secret guard caught. No stack trace
ever reaches a client; unexpected errors are logged here and answered with a plain 500.
"""

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_configs.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    ConfigProblem,
    ConfigRefused,
    DatabaseUnavailable,
    VersionConflict,
)
from agent_configs.models import error_field
from agent_configs.routing.errors import InvalidRoutingRules, RulesProblem, RulesVersionConflict

logger = logging.getLogger("switchboard.admin_api")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5
_TYPE_PREFIX = "urn:switchboard:problem:"


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `llm.temperature`.")
    message: str
    location: str = Field(default="body", description="body, query, path or header")


class Problem(BaseModel):
    """RFC 9457 problem details, plus `errors` (validation) and `current_version` (412)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = None
    current_version: int | None = None


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldProblem] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    problem = Problem(
        type=f"{_TYPE_PREFIX}{slug}" if slug != "about:blank" else slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors is not None else None,
        **extra,
    )
    body = problem.model_dump(mode="json", exclude_none=True)
    # An extension member given as None means "none" (the release gate's `run_id: null`).
    body |= {key: None for key, value in extra.items() if value is None}
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


# -- field paths ----------------------------------------------------------------------------

_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def field_problems(
    errors: Iterable[Mapping[str, Any]], location: str = "body"
) -> list[FieldProblem]:
    """Pydantic errors -> one FieldProblem each, without the submitted input."""
    problems = []
    for error in errors:
        loc, message = error_field(error)
        where = location
        if loc and loc[0] in _LOCATIONS:
            where, loc = loc[0], loc[1:]
        problems.append(
            FieldProblem(field=".".join(loc) or "(body)", message=message, location=where)
        )
    return problems


def validation_problem(error: ValidationError, *, prefix: str = "") -> ProblemError:
    problems = field_problems(error.errors(include_url=False, include_input=False))
    if prefix:
        problems = [p.model_copy(update={"field": f"{prefix}.{p.field}"}) for p in problems]
    return invalid_request(problems)


def invalid_request(problems: Sequence[FieldProblem], detail: str | None = None) -> ProblemError:
    summary = detail or "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
    return ProblemError(422, "validation", "The request is not valid", summary, errors=problems)


def rate_limited(wait_s: float, title: str) -> ProblemError:
    """429 with Retry-After: `wait_s` is what the key's token bucket said (admin_api/ratelimit.py)."""
    retry_after = str(max(1, math.ceil(wait_s)))
    return ProblemError(
        429, "rate-limited", title, f"retry in {retry_after}s", headers={"Retry-After": retry_after}
    )


def definition_problems(problems: Iterable[ConfigProblem]) -> list[FieldProblem]:
    """What the store refused in a definition (egress, tools, transfer targets, plugins)."""
    return [FieldProblem(field=p.field, message=p.message) for p in problems]


def rules_problems(problems: Iterable[RulesProblem]) -> list[FieldProblem]:
    """`chain[2] (user_attributes) params.rules.0.when` as the dotted `chain.2.params.rules.0.when`."""
    converted = []
    for problem in problems:
        path = (
            f"chain.{problem.index}.{problem.field}" if problem.index is not None else problem.field
        )
        message = f"{problem.strategy}: {problem.message}" if problem.strategy else problem.message
        converted.append(FieldProblem(field=path, message=message))
    return converted


# -- handlers -------------------------------------------------------------------------------


def etag_for(version: int) -> str:
    return f'"{version}"'


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(AgentNotFound, _on_not_found)  # type: ignore[arg-type]
    app.add_exception_handler(AgentAlreadyExists, _on_exists)  # type: ignore[arg-type]
    app.add_exception_handler(VersionConflict, _on_version_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(RulesVersionConflict, _on_version_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidRoutingRules, _on_invalid_rules)  # type: ignore[arg-type]
    app.add_exception_handler(ConfigRefused, _on_config_refused)  # type: ignore[arg-type]
    app.add_exception_handler(DatabaseUnavailable, _on_database_down)
    app.add_exception_handler(ConnectionFailure, _on_database_down)
    app.add_exception_handler(PyMongoError, _on_database_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem_response(
        request,
        exc.status,
        exc.slug,
        exc.title,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        **exc.extra,
    )


async def _on_request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()
    ]
    return await _on_problem(request, invalid_request(field_problems(errors)))


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
    title = titles.get(exc.status_code, "HTTP error")
    return problem_response(
        request, exc.status_code, "about:blank", title, str(exc.detail), headers=exc.headers or {}
    )


async def _on_not_found(request: Request, exc: AgentNotFound) -> JSONResponse:
    return problem_response(request, 404, "agent-not-found", "Agent type not found", str(exc))


async def _on_exists(request: Request, exc: AgentAlreadyExists) -> JSONResponse:
    return problem_response(request, 409, "agent-exists", "Agent type already exists", str(exc))


async def _on_version_conflict(
    request: Request, exc: VersionConflict | RulesVersionConflict
) -> JSONResponse:
    return problem_response(
        request,
        412,
        "version-conflict",
        "The version you based this change on is no longer current",
        str(exc),
        headers={"ETag": etag_for(exc.current)},
        current_version=exc.current,
    )


async def _on_invalid_rules(request: Request, exc: InvalidRoutingRules) -> JSONResponse:
    return await _on_problem(request, invalid_request(rules_problems(exc.problems), str(exc)))


async def _on_config_refused(request: Request, exc: ConfigRefused) -> JSONResponse:
    return await _on_problem(request, invalid_request(definition_problems(exc.problems)))


async def _on_database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "database unavailable during %s %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
    )
    return problem_response(
        request,
        503,
        "database-unavailable",
        "The database is unreachable",
        "Try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _on_database_error(request: Request, exc: PyMongoError) -> JSONResponse:
    logger.error("database error during %s %s: %r", request.method, request.url.path, exc)
    return problem_response(request, 500, "database-error", "The database refused the operation")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error during %s %s", request.method, request.url.path)
    return problem_response(request, 500, "internal", "Internal error", "The error was logged.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem answers for the given statuses."""
    descriptions = {
        400: "Malformed request body (not UTF-8 JSON)",
        401: "Missing or unknown API key",
        403: "The API key's role may not do this",
        404: "Not found",
        409: "Already exists",
        412: "Stale version (If-Match); the body names the current version",
        413: "Request body too large",
        422: "Invalid request, with field paths",
        428: "If-Match is required",
        429: "Rate limited; see Retry-After",
        503: "Database unreachable; see Retry-After",
    }
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        status: {"description": descriptions.get(status, "Problem"), "content": content}
        for status in statuses
    }
