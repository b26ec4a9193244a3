"""Routing rules: read, replace (validated), and resolve: the dry run that explains a decision.

A save is checked twice before anything is written: every strategy is registered and its
params are valid (`validate_rules`), and every agent_id the rules can propose exists
(`check_agent_ids`). Resolve runs the worker's Router on the stored rules, or on rules sent
with the request to preview them before saving.

Only an admin's action makes the API call out with the operator's secrets: a preview of sent
rules passes over their hooks unless an admin asks (`call_hooks`, 403 for anyone else); the
stored chain's hooks, the ones a room join calls, are called for any reader, and every dry
run that calls a hook takes a token from the key's bucket (429 with Retry-After when empty).
A viewer reads hook URLs as their origin only (admin_api/origins.py).

A save that sends a release-gated agent type more traffic (agent_configs/routing/traffic.py)
needs a passing eval run on its current version: else 409 `release-gate` listing each type
(admin_api/release_gate.py), unless the admin sends `Switchboard-Gate-Override`.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from admin_api.auth import ApiKey, Role
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
from admin_api.origins import origins_only
from admin_api.problems import (
    FieldProblem,
    ProblemError,
    etag_for,
    invalid_request,
    problem_responses,
    rate_limited,
    rules_problems,
)
from admin_api.release_gate import Gate, GateAction
from admin_api.routes import API_V1
from admin_api.storage import IsoDatetime
from agent_configs.models import Slug
from agent_configs.routing.errors import RulesVersionConflict
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
    call_hooks: bool = Field(
        default=False,
        description="Call the hooks (webhook strategy) of the `rules` sent, with the operator's "
        "header secrets: admin keys only (403 otherwise). Without it they are passed over, the "
        "trail says so. The stored rules' hooks are called either way, as for a room.",
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


def _as_read_by(caller: ApiKey, stored: StoredRules) -> StoredRules:
    """An admin reads what it wrote; anyone else reads every URL in params as its origin."""
    if caller.role == Role.ADMIN:
        return stored
    chain = [
        entry.model_copy(update={"params": origins_only(entry.params)}) for entry in stored.chain
    ]
    return stored.model_copy(update={"chain": chain})


@router.get("", responses=problem_responses(401, 403, 503))
async def get_rules(caller: ReaderKey, services: ServicesDep, response: Response) -> StoredRules:
    """The current rules; the version is the ETag to send back as If-Match. A viewer reads a
    hook's URL as its origin (`https://crm.example`), never its path or query."""
    rules = await services.rules_store.current()
    response.headers["ETag"] = etag_for(rules.version)
    return _as_read_by(caller, _stored(rules))


GATE_PROBLEM = problem_responses(409)
GATE_PROBLEM[409]["description"] = (
    "Release gate: the change sends more traffic to a gated agent type without a passing eval "
    "run on its current version (`release-gate` problem, `agents` lists each)"
)


@router.put("", responses=problem_responses(400, 401, 403, 412, 413, 422, 428, 503) | GATE_PROBLEM)
async def replace_rules(
    caller: AdminKey,
    expected: RequiredIfMatch,
    definition: RulesUpdate,
    services: ServicesDep,
    store: Store,
    events: Events,
    gate: Gate,
    response: Response,
) -> StoredRules:
    """Replace the chain. Every strategy must be registered, every agent_id must exist, and
    a release-gated type sent more traffic needs a passing eval run on its current version."""
    rules = validate_rules(definition.model_dump(include={"chain"}))
    missing = await check_agent_ids(rules, store)
    if missing:
        raise invalid_request(rules_problems(missing))
    current = await services.rules_store.current()
    if current.version != expected:
        raise RulesVersionConflict(expected, current.version)
    gated = await gate.admit_routing(store, current, rules)
    saved = await services.rules_store.save(rules, expected)
    services.resolver.rules.invalidate()
    await events.record(EventType.ROUTING_UPDATED, caller.name, version=saved.version)
    services.outbox.routing_updated(saved, caller.name)
    for config, admission in gated:
        if admission.overridden:
            await gate.record_override(config.agent_id, config.version, GateAction.ROUTING)
    response.headers["ETag"] = etag_for(saved.version)
    return _stored(saved)


@router.post("/resolve", responses=problem_responses(400, 401, 403, 413, 422, 429, 503))
async def resolve(
    caller: ReaderKey, request: ResolveRequest, resolver: ResolverDep, services: ServicesDep
) -> Resolution:
    """Dry run: which agent type a room with this metadata gets now, and why (the full trail).

    Hooks of sent `rules` are called only for an admin asking with `call_hooks`; a dry run
    that calls a hook is rate-limited per key (ADMIN_API_HOOK_DRY_RUN_RATE_PER_MIN / _BURST)."""
    if request.call_hooks and caller.role != Role.ADMIN:
        message = "only an admin key may call hooks from a dry run; omit it to preview without"
        raise ProblemError(
            403,
            "forbidden",
            "Not allowed for this API key",
            f"the key '{caller.name}' has the {caller.role} role: call_hooks needs admin",
            errors=[FieldProblem(field="call_hooks", message=message)],
        )
    rules = validate_rules(request.rules.model_dump()) if request.rules is not None else None
    at = request.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)

    def before_calling() -> None:
        wait_s = services.hook_dry_run_buckets.take(caller.key_id)
        if wait_s is not None:
            raise rate_limited(wait_s, "Too many dry runs that call a routing hook")

    decision = await resolver.resolve(
        request.metadata,
        rules=rules,
        pool=frozenset(request.pool or ()),
        at=at,
        call_hooks=request.call_hooks,
        before_calling=before_calling,
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
