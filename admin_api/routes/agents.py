"""Agent types: CRUD with optimistic concurrency, history, rollback, lifecycle, validation.

Every write answers with the new version as ETag; PUT and PATCH need it back as If-Match
(428 without it, 412 naming the current version when someone saved in between). Status
changes only through pause / resume / DELETE (archive), so each is an audit event of its own;
PUT and PATCH keep the current status. Every change is a new version, read by the worker's
version-checked cache at the next session: no restart, no TTL.
"""

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field, ValidationError

from admin_api.auth import ApiKey
from admin_api.deps import AdminKey, IfMatch, ReaderKey, Reads, RequiredIfMatch, ServicesDep, Store
from admin_api.events import EventType
from admin_api.problems import (
    FieldProblem,
    definition_problems,
    etag_for,
    field_problems,
    invalid_request,
    problem_responses,
    validation_problem,
)
from admin_api.routes import API_V1
from admin_api.services import Services
from agent_configs.cloudevents import EventType as OutboxType
from agent_configs.errors import AgentNotFound, VersionConflict
from agent_configs.models import AgentConfig, AgentStatus
from agent_configs.store import MAX_PAGE_SIZE

router = APIRouter(prefix=f"{API_V1}/agents", tags=["agents"])

AgentId = Annotated[
    str, Path(min_length=2, max_length=64, pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
]
STORE_OWNED = ("version", "created_at", "updated_at")
READ_PROBLEMS = problem_responses(401, 403, 404, 422, 503)
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 412, 413, 422, 428, 503)
# Status changes and rollback take If-Match when given (412 if stale) but never require it:
# each sets a named target, so there is no 428 to document.
STATUS_PROBLEMS = problem_responses(400, 401, 403, 404, 412, 413, 422, 503)


class AgentPage(BaseModel):
    items: list[AgentConfig]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class VersionEntry(BaseModel):
    version: int
    status: AgentStatus
    saved_at: datetime


class VersionList(BaseModel):
    agent_id: str
    items: list[VersionEntry]


class RollbackRequest(BaseModel):
    version: int = Field(ge=1, description="The version whose definition becomes current again.")


class ValidationReport(BaseModel):
    valid: bool
    errors: list[FieldProblem] = Field(default_factory=list)
    config: AgentConfig | None = Field(
        default=None, description="The normalized config, when valid."
    )


def _with_etag(response: Response, config: AgentConfig) -> AgentConfig:
    response.headers["ETag"] = etag_for(config.version)
    return config


# -- reads ----------------------------------------------------------------------------------


StatusFilter = Annotated[AgentStatus | None, Query(alias="status")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
]
Filter = Annotated[str | None, Query(max_length=64)]


@router.get("", responses=READ_PROBLEMS)
@router.get("/list", responses=READ_PROBLEMS, deprecated=True)
async def list_agents(
    caller: ReaderKey,
    store: Store,
    status_filter: StatusFilter = None,
    purpose: Filter = None,
    tag: Filter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AgentPage:
    """Agent types ordered by agent_id, filtered by status, purpose and tag.

    Also served at `/agents/list` (deprecated), because existing clients call it."""
    page = await store.list_agents(
        status=status_filter, purpose=purpose, tag=tag, limit=limit, after=cursor
    )
    return AgentPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/{agent_id}", responses=READ_PROBLEMS, response_model=AgentConfig)
async def get_agent(caller: ReaderKey, agent_id: AgentId, reads: Reads) -> Response:
    """The current config; its version is the ETag to send back as If-Match.

    Served from the catalog, which reads the change stamp at most every
    ADMIN_API_CONFIG_CACHE_TTL_S (config_reads.py, agent_configs/catalog.py).
    """
    cached = await reads.get(agent_id)
    return Response(
        cached.body,
        media_type="application/json",
        headers={"ETag": etag_for(cached.config.version)},
    )


@router.get("/{agent_id}/versions", responses=READ_PROBLEMS)
async def list_versions(caller: ReaderKey, agent_id: AgentId, store: Store) -> VersionList:
    """Every saved version, newest first."""
    versions = await store.versions(agent_id)
    items = [
        VersionEntry(version=v.version, status=v.status, saved_at=v.saved_at) for v in versions
    ]
    return VersionList(agent_id=agent_id, items=items)


@router.get("/{agent_id}/versions/{version}", responses=READ_PROBLEMS)
async def get_version(
    caller: ReaderKey,
    agent_id: AgentId,
    version: Annotated[int, Path(ge=1, le=10**9)],
    store: Store,
) -> AgentConfig:
    return await store.get_version(agent_id, version)


# -- writes ---------------------------------------------------------------------------------


@router.post("/validate", responses=problem_responses(400, 401, 403, 413, 422, 503))
async def validate_agent(
    caller: ReaderKey, store: Store, definition: Annotated[dict[str, Any], Body()]
) -> ValidationReport:
    """Check a config without saving it: every problem with its field path, the same ones a
    create or update would answer 422 with (the model's, then the store's: egress policy,
    tools, transfer targets, plugins)."""
    try:
        config = AgentConfig.model_validate(
            {k: v for k, v in definition.items() if k not in STORE_OWNED}
        )
    except ValidationError as exc:
        problems = field_problems(exc.errors(include_url=False, include_input=False))
        return ValidationReport(valid=False, errors=problems)
    refused = await store.definition_problems(config)
    if refused:
        return ValidationReport(valid=False, errors=definition_problems(refused))
    return ValidationReport(valid=True, config=config)


class AgentChanges:
    """The writes of one admin request: each result refreshes the read cache and is audited.

    A conflict (or a vanished agent) drops the cached copy, so the re-read that follows a 412
    is fresh even when the winning write came through another replica.
    """

    def __init__(self, caller: ApiKey, services: Services) -> None:
        self.actor = caller.name
        self.store = services.store
        self._reads = services.config_reads
        self._events = services.events
        self._outbox = services.outbox

    async def save(self, agent_id: str, write: Awaitable[AgentConfig]) -> AgentConfig:
        try:
            saved = await write
        except (VersionConflict, AgentNotFound):
            self._reads.forget(agent_id)
            raise
        self._reads.remember(saved)
        return saved

    async def audit(
        self, kind: EventType, saved: AgentConfig, details: dict[str, Any] | None = None
    ) -> None:
        """The committed change in the audit trail and, for webhooks, in the outbox."""
        await self._events.record(
            kind, self.actor, agent_id=saved.agent_id, version=saved.version, details=details
        )
        restored = (details or {}).get("restored_version")
        self._outbox.agent_changed(OutboxType(kind), saved, self.actor, restored_version=restored)


async def agent_changes(caller: AdminKey, services: ServicesDep) -> AgentChanges:
    return AgentChanges(caller, services)


Changes = Annotated[AgentChanges, Depends(agent_changes)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
)
async def create_agent(
    changes: Changes, config: AgentConfig, request: Request, response: Response
) -> AgentConfig:
    """A new agent type at version 1 (`version` and timestamps in the body are ignored)."""
    created = await changes.save(config.agent_id, changes.store.create(config))
    await changes.audit(EventType.AGENT_CREATED, created)
    response.headers["Location"] = str(request.url_for("get_agent", agent_id=created.agent_id))
    return _with_etag(response, created)


@router.put("/{agent_id}", responses=WRITE_PROBLEMS)
async def replace_agent(
    changes: Changes,
    agent_id: AgentId,
    expected: RequiredIfMatch,
    config: AgentConfig,
    response: Response,
) -> AgentConfig:
    """Replace the whole definition. The status stays as it is (see pause / resume)."""
    if config.agent_id != agent_id:
        message = f"must be '{agent_id}', as in the path"
        raise invalid_request([FieldProblem(field="agent_id", message=message)])

    async def replace() -> AgentConfig:
        current = await changes.store.get(agent_id)
        _status_unchanged(config, current, "status" in config.model_fields_set)
        return await changes.store.update(
            config.model_copy(update={"status": current.status}), expected
        )

    saved = await changes.save(agent_id, replace())
    await changes.audit(EventType.AGENT_UPDATED, saved)
    return _with_etag(response, saved)


@router.patch("/{agent_id}", responses=WRITE_PROBLEMS)
async def patch_agent(
    changes: Changes,
    agent_id: AgentId,
    expected: RequiredIfMatch,
    patch: Annotated[dict[str, Any], Body(media_type="application/merge-patch+json")],
    response: Response,
) -> AgentConfig:
    """JSON Merge Patch (RFC 7386) of the definition: `{"llm": {"temperature": 0.2}}`; null removes."""
    _check_patch_keys(patch, agent_id)

    async def apply_patch() -> AgentConfig:
        current = await changes.store.get(agent_id)
        if current.version != expected:
            raise VersionConflict(agent_id, expected, current.version)
        try:
            config = AgentConfig.model_validate(merge_patch(current.definition(), patch))
        except ValidationError as exc:
            raise validation_problem(exc) from None
        _status_unchanged(config, current, "status" in patch)
        return await changes.store.update(config, expected)

    saved = await changes.save(agent_id, apply_patch())
    await changes.audit(EventType.AGENT_UPDATED, saved)
    return _with_etag(response, saved)


@router.delete("/{agent_id}", responses=STATUS_PROBLEMS)
async def archive_agent(
    changes: Changes, agent_id: AgentId, expected: IfMatch, response: Response
) -> AgentConfig:
    """Archive (kept with its history; the router skips it). `resume` brings it back."""
    return _with_etag(
        response, await _change_status(changes, agent_id, AgentStatus.ARCHIVED, expected)
    )


@router.post("/{agent_id}/pause", responses=STATUS_PROBLEMS)
async def pause_agent(
    changes: Changes, agent_id: AgentId, expected: IfMatch, response: Response
) -> AgentConfig:
    """The router skips a paused type from the next room on ("paused" in the trail)."""
    return _with_etag(
        response, await _change_status(changes, agent_id, AgentStatus.PAUSED, expected)
    )


@router.post("/{agent_id}/resume", responses=STATUS_PROBLEMS)
async def resume_agent(
    changes: Changes, agent_id: AgentId, expected: IfMatch, response: Response
) -> AgentConfig:
    return _with_etag(
        response, await _change_status(changes, agent_id, AgentStatus.ACTIVE, expected)
    )


@router.post("/{agent_id}/rollback", responses=STATUS_PROBLEMS)
async def rollback_agent(
    changes: Changes,
    agent_id: AgentId,
    expected: IfMatch,
    body: RollbackRequest,
    response: Response,
) -> AgentConfig:
    """Make an earlier version's definition current again, as a new version."""
    saved = await changes.save(agent_id, changes.store.rollback(agent_id, body.version, expected))
    await changes.audit(EventType.AGENT_ROLLED_BACK, saved, {"restored_version": body.version})
    return _with_etag(response, saved)


# -- helpers --------------------------------------------------------------------------------

_STATUS_EVENTS = {
    AgentStatus.ACTIVE: EventType.AGENT_RESUMED,
    AgentStatus.PAUSED: EventType.AGENT_PAUSED,
    AgentStatus.ARCHIVED: EventType.AGENT_ARCHIVED,
}


async def _change_status(
    changes: AgentChanges, agent_id: str, wanted: AgentStatus, expected: int | None
) -> AgentConfig:
    """Set the status; asking for the status it already has changes nothing and is not audited."""
    changed = False

    async def change() -> AgentConfig:
        nonlocal changed
        current = await changes.store.get(agent_id)
        if expected is not None and expected != current.version:
            raise VersionConflict(agent_id, expected, current.version)
        if current.status == wanted:
            return current
        changed = True
        # Not `update`: a status change files no new definition, so it is not checked again
        # (a type whose transfer target was archived since can still be paused or archived).
        return await changes.store.set_status(agent_id, wanted, current.version)

    saved = await changes.save(agent_id, change())
    if changed:
        await changes.audit(_STATUS_EVENTS[wanted], saved)
    return saved


def _status_unchanged(config: AgentConfig, current: AgentConfig, given: bool) -> None:
    if given and config.status != current.status:
        message = f"is {current.status}; change it with POST .../pause, .../resume or DELETE"
        raise invalid_request([FieldProblem(field="status", message=message)])


def _check_patch_keys(patch: dict[str, Any], agent_id: str) -> None:
    problems = [
        FieldProblem(field=k, message="is set by the store, not by a patch")
        for k in STORE_OWNED
        if k in patch
    ]
    if "agent_id" in patch and patch["agent_id"] != agent_id:
        problems.append(
            FieldProblem(field="agent_id", message="cannot change; create a new agent type instead")
        )
    if problems:
        raise invalid_request(problems)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
