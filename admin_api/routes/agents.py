"""Agent types: CRUD with optimistic concurrency, history, rollback, lifecycle, validation.

Every write answers with the new version as ETag; PUT and PATCH need it back as If-Match
(428 without it, 412 naming the current version when someone saved in between). Status
changes only through pause / resume / DELETE (archive), so each is an audit event of its own;
PUT and PATCH keep the current status. Every change is a new version, read by the worker's
version-checked cache at the next session: no restart, no TTL.

A release-gated type (`release_gate`, admin_api/release_gate.py) takes a save or a rollback
without a passing eval run as a candidate: filed in the history, answered 202 with header
`Switchboard-Candidate: <N>`, not live until `POST .../versions/{N}/activate` (409 without a
passing run). A resume without one is a 409 too. `Switchboard-Gate-Override` lets it through.
"""

from collections.abc import Awaitable, Callable
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
from admin_api.release_gate import CANDIDATE_HEADER, Admission, Gate, GateAction
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
GATE_PROBLEMS = problem_responses(409)
GATE_PROBLEMS[409]["description"] = (
    "Release gate: no passing eval run for the version (`release-gate` problem with agent_id, "
    "version, run_id, failing_scenarios); see Switchboard-Gate-Override"
)
CANDIDATE_RESPONSE: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "A release-gated type without a passing eval run: the change is filed "
        "as a candidate version, not live (the ETag stays the current version's); activate it "
        "with POST .../versions/{version}/activate once a run on it passed",
        "model": AgentConfig,
        "headers": {
            CANDIDATE_HEADER: {
                "description": "The candidate's version number.",
                "schema": {"type": "integer"},
            }
        },
    }
}


class AgentPage(BaseModel):
    items: list[AgentConfig]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class VersionEntry(BaseModel):
    version: int
    status: AgentStatus
    saved_at: datetime
    candidate: bool = Field(
        default=False,
        description="Filed as a release-gate candidate and never activated: never current.",
    )


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
    """Every saved version, newest first; candidates (never current) included."""
    versions = await store.versions(agent_id)
    items = [
        VersionEntry(version=v.version, status=v.status, saved_at=v.saved_at, candidate=v.candidate)
        for v in versions
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

    def forget(self, agent_id: str) -> None:
        self._reads.forget(agent_id)

    async def save(self, agent_id: str, write: Awaitable[AgentConfig]) -> AgentConfig:
        try:
            saved = await write
        except (VersionConflict, AgentNotFound):
            self._reads.forget(agent_id)
            raise
        self._reads.remember(saved)
        return saved

    async def file(self, agent_id: str, write: Awaitable[AgentConfig]) -> AgentConfig:
        """A candidate filed: the current version, and so the read cache, stay as they are."""
        try:
            return await write
        except (VersionConflict, AgentNotFound):
            self._reads.forget(agent_id)
            raise

    async def audit_activation(
        self, saved: AgentConfig, *, run_id: str | None, activated_version: int
    ) -> None:
        details = {"run_id": run_id, "activated_version": activated_version}
        await self._events.record(
            EventType.AGENT_ACTIVATED,
            self.actor,
            agent_id=saved.agent_id,
            version=saved.version,
            details=details,
        )
        self._outbox.agent_activated(
            saved, self.actor, run_id=run_id, activated_version=activated_version
        )

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


@router.put("/{agent_id}", responses=WRITE_PROBLEMS | CANDIDATE_RESPONSE)
async def replace_agent(
    changes: Changes,
    gate: Gate,
    agent_id: AgentId,
    expected: RequiredIfMatch,
    config: AgentConfig,
    response: Response,
) -> AgentConfig:
    """Replace the whole definition. The status stays as it is (see pause / resume).
    A release-gated type without a passing run on the new definition: 202, a candidate."""
    if config.agent_id != agent_id:
        message = f"must be '{agent_id}', as in the path"
        raise invalid_request([FieldProblem(field="agent_id", message=message)])

    def replaced(current: AgentConfig) -> AgentConfig:
        _status_unchanged(config, current, "status" in config.model_fields_set)
        return config.model_copy(update={"status": current.status})

    return await _gated_save(
        changes, gate, agent_id, replaced, expected, response, EventType.AGENT_UPDATED
    )


@router.patch("/{agent_id}", responses=WRITE_PROBLEMS | CANDIDATE_RESPONSE)
async def patch_agent(
    changes: Changes,
    gate: Gate,
    agent_id: AgentId,
    expected: RequiredIfMatch,
    patch: Annotated[dict[str, Any], Body(media_type="application/merge-patch+json")],
    response: Response,
) -> AgentConfig:
    """JSON Merge Patch (RFC 7386) of the definition: `{"llm": {"temperature": 0.2}}`; null
    removes. A release-gated type without a passing run on the result: 202, a candidate."""
    _check_patch_keys(patch, agent_id)

    def patched(current: AgentConfig) -> AgentConfig:
        if current.version != expected:
            raise VersionConflict(agent_id, expected, current.version)
        try:
            config = AgentConfig.model_validate(merge_patch(current.definition(), patch))
        except ValidationError as exc:
            raise validation_problem(exc) from None
        _status_unchanged(config, current, "status" in patch)
        return config

    return await _gated_save(
        changes, gate, agent_id, patched, expected, response, EventType.AGENT_UPDATED
    )


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


@router.post("/{agent_id}/resume", responses=STATUS_PROBLEMS | GATE_PROBLEMS)
async def resume_agent(
    changes: Changes, gate: Gate, agent_id: AgentId, expected: IfMatch, response: Response
) -> AgentConfig:
    """A release-gated type resumes only with a passing eval run on its current definition."""
    return _with_etag(
        response, await _change_status(changes, agent_id, AgentStatus.ACTIVE, expected, gate)
    )


@router.post("/{agent_id}/rollback", responses=STATUS_PROBLEMS | CANDIDATE_RESPONSE)
async def rollback_agent(
    changes: Changes,
    gate: Gate,
    agent_id: AgentId,
    expected: IfMatch,
    body: RollbackRequest,
    response: Response,
) -> AgentConfig:
    """Make an earlier version's definition current again, as a new version (the status
    stays). A release-gated type without a passing run on that definition: 202, a candidate."""
    restored = await changes.store.get_version(agent_id, body.version)

    def rolled_back(current: AgentConfig) -> AgentConfig:
        return restored.model_copy(update={"status": current.status})

    return await _gated_save(
        changes,
        gate,
        agent_id,
        rolled_back,
        expected,
        response,
        EventType.AGENT_ROLLED_BACK,
        {"restored_version": body.version},
    )


@router.post("/{agent_id}/versions/{version}/activate", responses=STATUS_PROBLEMS | GATE_PROBLEMS)
async def activate_version(
    changes: Changes,
    gate: Gate,
    agent_id: AgentId,
    version: Annotated[int, Path(ge=1, le=10**9)],
    expected: IfMatch,
    response: Response,
) -> AgentConfig:
    """Make a filed version current: a candidate (it keeps its number), or an earlier version
    (filed again as a new one, as a rollback). A release-gated type needs a passing eval run
    on that version's definition (409 `release-gate` naming the failing scenarios otherwise).
    The current version itself: 200, nothing changes. Audited as agent.activated."""
    current = await changes.store.get(agent_id)
    if expected is not None and expected != current.version:
        changes.forget(agent_id)
        raise VersionConflict(agent_id, expected, current.version)
    target = await changes.store.get_version(agent_id, version)
    if version == current.version:
        return _with_etag(response, current)
    admission = await gate.admit(current, target)
    if admission.verdict is not None and not admission.allowed:
        raise gate.refusal(admission.verdict)
    saved = await changes.save(agent_id, changes.store.activate(agent_id, version, current.version))
    await changes.audit_activation(saved, run_id=admission.run_id, activated_version=version)
    await _record_override(gate, admission, saved, GateAction.ACTIVATE)
    return _with_etag(response, saved)


# -- helpers --------------------------------------------------------------------------------

_STATUS_EVENTS = {
    AgentStatus.ACTIVE: EventType.AGENT_RESUMED,
    AgentStatus.PAUSED: EventType.AGENT_PAUSED,
    AgentStatus.ARCHIVED: EventType.AGENT_ARCHIVED,
}


async def _gated_save(
    changes: AgentChanges,
    gate: Gate,
    agent_id: str,
    build: Callable[[AgentConfig], AgentConfig],
    expected: int | None,
    response: Response,
    kind: EventType,
    details: dict[str, Any] | None = None,
) -> AgentConfig:
    """Save `build(current)`, or file it as a candidate (202) when the release gate says no."""
    try:
        current = await changes.store.get(agent_id)
        wanted = build(current)
    except (VersionConflict, AgentNotFound):
        changes.forget(agent_id)
        raise
    base = current.version if expected is None else expected
    admission = await gate.admit(current, wanted)
    if not admission.allowed:
        candidate = await changes.file(agent_id, changes.store.file_candidate(wanted, base))
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers[CANDIDATE_HEADER] = str(candidate.version)
        response.headers["ETag"] = etag_for(current.version)
        return candidate
    saved = await changes.save(agent_id, changes.store.update(wanted, base))
    await changes.audit(kind, saved, details)
    action = GateAction.ROLLBACK if kind == EventType.AGENT_ROLLED_BACK else GateAction.SAVE
    await _record_override(gate, admission, saved, action)
    return _with_etag(response, saved)


async def _record_override(
    gate: Gate, admission: Admission, saved: AgentConfig, action: GateAction
) -> None:
    if admission.overridden:
        await gate.record_override(saved.agent_id, saved.version, action)


async def _change_status(
    changes: AgentChanges,
    agent_id: str,
    wanted: AgentStatus,
    expected: int | None,
    gate: Gate | None = None,
) -> AgentConfig:
    """Set the status; asking for the status it already has changes nothing and is not audited.
    With `gate` (a resume), a release-gated type needs a passing run on its definition."""
    changed = False
    admission = Admission(None)

    async def change() -> AgentConfig:
        nonlocal changed
        current = await changes.store.get(agent_id)
        if expected is not None and expected != current.version:
            raise VersionConflict(agent_id, expected, current.version)
        if current.status == wanted:
            return current
        nonlocal admission
        if gate is not None:
            admission = await gate.admit(current, current)
            if admission.verdict is not None and not admission.allowed:
                raise gate.refusal(admission.verdict)
        changed = True
        # Not `update`: a status change files no new definition, so it is not checked again
        # (a type whose transfer target was archived since can still be paused or archived).
        return await changes.store.set_status(agent_id, wanted, current.version)

    saved = await changes.save(agent_id, change())
    if changed:
        await changes.audit(_STATUS_EVENTS[wanted], saved)
        if gate is not None:
            await _record_override(gate, admission, saved, GateAction.RESUME)
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
