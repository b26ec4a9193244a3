"""Request dependencies: the services, the caller's API key by role, and If-Match.

All are `async def`, even those that never await: FastAPI runs a plain `def` dependency in
its thread pool, which costs a thread hand-off per dependency per request.

    async def pause(agent_id: str, caller: AdminKey, store: Store, expected: IfMatch): ...

401 means "who are you?" (no key, or an unknown or revoked one); 403 means "you may not":
a valid key whose role does not allow the route.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from admin_api.auth import ApiKey, Role
from admin_api.config_reads import ConfigReads
from admin_api.events import EventLog
from admin_api.problems import FieldProblem, ProblemError, invalid_request
from admin_api.resolver import Resolver
from admin_api.services import Services
from admin_api.session_records import SessionRecords
from admin_api.settings import AdminSettings
from agent_configs.store import ConfigStore

_bearer = HTTPBearer(
    auto_error=False, description="An API key from `python -m admin_api.keys create`."
)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_store(services: ServicesDep) -> ConfigStore:
    return services.store


async def get_config_reads(services: ServicesDep) -> ConfigReads:
    return services.config_reads


async def get_events(services: ServicesDep) -> EventLog:
    return services.events


async def get_resolver(services: ServicesDep) -> Resolver:
    return services.resolver


async def get_sessions(services: ServicesDep) -> SessionRecords:
    return services.sessions


async def get_settings(services: ServicesDep) -> AdminSettings:
    return services.settings


Store = Annotated[ConfigStore, Depends(get_store)]
Reads = Annotated[ConfigReads, Depends(get_config_reads)]
Events = Annotated[EventLog, Depends(get_events)]
ResolverDep = Annotated[Resolver, Depends(get_resolver)]
Sessions = Annotated[SessionRecords, Depends(get_sessions)]
SettingsDep = Annotated[AdminSettings, Depends(get_settings)]


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "unauthenticated",
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticated_key(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthenticated("send an API key as `Authorization: Bearer <key>`")
    key = await services.keys.authenticate(credentials.credentials)
    if key is None:
        raise _unauthenticated("the API key is unknown or revoked")
    return key


def require_role(*roles: Role) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A dependency that passes the caller's key on when its role is one of `roles`."""
    allowed = frozenset(roles)

    async def check(key: Annotated[ApiKey, Depends(authenticated_key)]) -> ApiKey:
        if key.role not in allowed:
            names = " or ".join(sorted(allowed))
            detail = f"this needs the {names} role; the key '{key.name}' has {key.role}"
            raise ProblemError(403, "forbidden", "Not allowed for this API key", detail)
        return key

    return check


WRITE_ROLES = (Role.ADMIN,)
READ_ROLES = (Role.ADMIN, Role.VIEWER)
TOKEN_ROLES = (Role.ADMIN, Role.TOKEN)
"""Who may do what: the dependencies below enforce it, `GET /me` reports it to the console."""

AnyKey = Annotated[ApiKey, Depends(authenticated_key)]
AdminKey = Annotated[ApiKey, Depends(require_role(*WRITE_ROLES))]
ReaderKey = Annotated[ApiKey, Depends(require_role(*READ_ROLES))]
TokenKey = Annotated[ApiKey, Depends(require_role(*TOKEN_ROLES))]


def parse_if_match(value: str | None) -> int | None:
    """`"3"`, `W/"3"` or `3` -> 3; absent or `*` -> None (apply to the current version)."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 12:
        message = 'must be the ETag of the version you read, e.g. "3"'
        raise invalid_request([FieldProblem(field="If-Match", message=message, location="header")])
    return int(text)


async def optional_if_match(
    if_match: Annotated[
        str | None, Header(description='ETag of the version you read, e.g. "3".')
    ] = None,
) -> int | None:
    return parse_if_match(if_match)


REQUIRED_IF_MATCH_DESCRIPTION = (
    'Required (428 without it): the ETag of the version you read, e.g. "3".'
)


async def required_if_match(
    if_match: Annotated[str | None, Header(description=REQUIRED_IF_MATCH_DESCRIPTION)] = None,
) -> int:
    expected = parse_if_match(if_match)
    if expected is None:
        raise ProblemError(
            428,
            "if-match-required",
            "If-Match is required",
            "send the ETag you read (GET) as If-Match, so a concurrent change is not overwritten",
        )
    return expected


IfMatch = Annotated[int | None, Depends(optional_if_match)]
RequiredIfMatch = Annotated[int, Depends(required_if_match)]


def mark_if_match_required(schema: dict[str, Any]) -> None:
    """Mark If-Match `required: true` in the OpenAPI of every operation that answers 428 without it.

    The header is declared optional on purpose: a missing one must be a 428 naming what to do
    (RFC 6585), not FastAPI's generic 422 for a missing parameter. So the generated schema
    said "optional" for a header the API in fact requires. The operations are found by the
    description only `required_if_match` gives the header, so the document follows the
    dependency that enforces it (without reading FastAPI's route internals, which change).
    """
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else ():
                if (
                    parameter.get("in") == "header"
                    and parameter.get("name", "").lower() == "if-match"
                    and parameter.get("description") == REQUIRED_IF_MATCH_DESCRIPTION
                ):
                    parameter["required"] = True
