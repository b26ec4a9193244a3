"""Routing rules: read, replace (validated), and resolve: the dry run that explains a decision.

A save is checked twice before anything is written: every strategy is registered and its
params are valid (`validate_rules`), and every agent_id the rules can propose exists
(`check_agent_ids`). Resolve runs the worker's Router on the stored rules, or on rules sent
with the request to preview them before saving.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from admin_api.deps import (
    AdminKey,
    Events,
    ReaderKey,
    RequiredIfMatch,
    ResolverDep,
    ServicesDep,
    Store,
)
from admin_api.events import EventType
from admin_api.problems import etag_for, invalid_request, problem_responses, rules_problems
from admin_api.routes import API_V1
from admin_api.storage import IsoDatetime
from agent_configs.models import Slug
from agent_configs.routing.router import TrailEntry
from agent_configs.routing.rules import ChainEntry, RoutingRules, check_agent_ids, validate_rules

router = APIRouter(prefix=f"{API_V1}/routing", tags=["routing"])


class RulesDefinition(BaseModel):
    """The strategy chain, in order; the first strategy proposing an available type wins."""

    model_config = ConfigDict(extra="forbid")

    chain: list[ChainEntry] = Field(min_length=1, max_length=50)


class StoredRules(RulesDefinition):
    version: int = Field(description="0: the built-in default rules (nothing saved yet).")
    updated_at: datetime | None = None


class RulesUpdate(RulesDefinition):
    """What GET returns can be sent back as it is: `version` and `updated_at` are ignored
    (If-Match says which version the change is based on)."""

    version: int | None = None
    updated_at: datetime | None = None


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | str | None = Field(
        default=None,
        description="What a room carries, as an object or JSON text: "
        '{"purpose": "support", "user_id": "u-1", "user_details": {"tier": "premium"}}.',
    )
    rules: RulesDefinition | None = Field(
        default=None, description="Preview these rules instead of the stored ones."
    )
    pool: list[Slug] | None = Field(
        default=None,
        max_length=200,
        description="Decide as a worker with WORKER_AGENT_TYPES=these would.",
    )
    at: IsoDatetime | None = Field(
        default=None, description="Decide as at this time (time_window); default now."
    )


class Resolution(BaseModel):
    agent_id: str | None = Field(
        description="None when no strategy proposed an available agent type."
    )
    strategy: str | None
    trail: list[TrailEntry] = Field(
        description="Every strategy consulted, in order: proposal, outcome, reason."
    )
    warnings: list[str]
    rules_version: int
    decided_at: datetime
    variables: dict[str, Any] = Field(
        default_factory=dict,
        description="What the chosen strategy (webhook) hands the session's templates; secret-looking values withheld.",
    )
    agent_name: str = Field(
        description="The worker agent name (pool) a token for this room dispatches."
    )


def _stored(rules: RoutingRules) -> StoredRules:
    return StoredRules(chain=list(rules.chain), version=rules.version, updated_at=rules.updated_at)


@router.get("", responses=problem_responses(401, 403, 503))
async def get_rules(caller: ReaderKey, services: ServicesDep, response: Response) -> StoredRules:
    """The current rules; the version is the ETag to send back as If-Match."""
    rules = await services.rules_store.current()
    response.headers["ETag"] = etag_for(rules.version)
    return _stored(rules)


@router.put("", responses=problem_responses(400, 401, 403, 412, 413, 422, 428, 503))
async def replace_rules(
    caller: AdminKey,
    expected: RequiredIfMatch,
    definition: RulesUpdate,
    services: ServicesDep,
    store: Store,
    events: Events,
    response: Response,
) -> StoredRules:
    """Replace the chain. Every strategy must be registered, every agent_id must exist."""
    rules = validate_rules(definition.model_dump(include={"chain"}))
    missing = await check_agent_ids(rules, store)
    if missing:
        raise invalid_request(rules_problems(missing))
    saved = await services.rules_store.save(rules, expected)
    services.resolver.rules.invalidate()
    await events.record(EventType.ROUTING_UPDATED, caller.name, version=saved.version)
    services.outbox.routing_updated(saved, caller.name)
    response.headers["ETag"] = etag_for(saved.version)
    return _stored(saved)


@router.post("/resolve", responses=problem_responses(400, 401, 403, 413, 422, 503))
async def resolve(caller: ReaderKey, request: ResolveRequest, resolver: ResolverDep) -> Resolution:
    """Dry run: which agent type a room with this metadata gets now, and why (the full trail)."""
    rules = validate_rules(request.rules.model_dump()) if request.rules is not None else None
    at = request.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    decision = await resolver.resolve(
        request.metadata, rules=rules, pool=frozenset(request.pool or ()), at=at
    )
    return Resolution(
        agent_id=decision.agent_id,
        strategy=decision.strategy,
        trail=list(decision.trail),
        warnings=list(decision.warnings),
        rules_version=decision.rules_version,
        decided_at=decision.decided_at,
        variables=decision.model_dump(mode="json", include={"variables"})["variables"],
        agent_name=resolver.agent_name_for(decision.agent_id),
    )
