"""A/B analytics: two variants of a routing split, or two versions of one type, compared on
their ended sessions, each number with its sample size and 95% interval (admin_api/ab_records.py
reads the records, admin_api/ab_statistics.py holds the statistics)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from admin_api.ab_records import Group, GroupSpec, InvalidSpec, read_groups
from admin_api.deps import ReaderKey, ServicesDep, Store
from admin_api.problems import FieldProblem, ProblemError, invalid_request, problem_responses
from admin_api.routes import API_V1
from admin_api.storage import IsoDatetime
from agent_configs.errors import AgentNotFound
from agent_configs.models import AgentConfig
from agent_configs.store import ConfigStore

router = APIRouter(prefix=f"{API_V1}/analytics", tags=["analytics"])

SPEC_HELP = "`agent_id` (every version) or `agent_id@version`, e.g. `support-agent-v1@3`."
Spec = Annotated[str, Query(min_length=1, max_length=80, description=SPEC_HELP)]


class Comparison(BaseModel):
    a: Group
    b: Group
    since: datetime | None
    until: datetime | None


@router.get("/compare", responses=problem_responses(401, 403, 422, 503))
async def compare(
    caller: ReaderKey,
    services: ServicesDep,
    store: Store,
    a: Spec,
    b: Spec,
    since: Annotated[
        IsoDatetime | None, Query(description="Sessions started at or after (ISO 8601).")
    ] = None,
    until: Annotated[
        IsoDatetime | None, Query(description="Sessions started before (ISO 8601).")
    ] = None,
) -> Comparison:
    """Each group's ended sessions (the newest 5,000 at most: `truncated`) by the type routing
    chose for them (and its version at the start, with `@version`): turns per session,
    escalation and hand-off rates, end reasons, the turn schema's fields (enum, bool and string
    values as rates of the type's answered turns, numbers as means), latency marks per turn and
    tokens per session. Rates carry Wilson intervals, means Student's t intervals."""
    since, until = _utc("since", since), _utc("until", until)
    if since is not None and until is not None and since >= until:
        raise invalid_request(
            [FieldProblem(field="until", message="must be after `since`", location="query")]
        )
    specs = {name: _spec(name, text) for name, text in (("a", a), ("b", b))}
    configs = {name: await _config(store, name, spec) for name, spec in specs.items()}
    a_group, b_group = await read_groups(
        services.database, [(specs[name], configs[name]) for name in ("a", "b")], since, until
    )
    return Comparison(a=a_group, b=b_group, since=since, until=until)


def _utc(name: str, moment: datetime | None) -> datetime | None:
    """In UTC (a time without an offset is UTC, as MongoDB stores it). A time whose offset puts
    it outside years 1..9999 in UTC cannot be stored or compared: a 422, not a 500."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        message = "out of range once in UTC (years 1 to 9999)"
        raise invalid_request(
            [FieldProblem(field=name, message=message, location="query")]
        ) from None


def _spec(name: str, text: str) -> GroupSpec:
    try:
        return GroupSpec.parse(text)
    except InvalidSpec as exc:
        raise _spec_problem(name, str(exc)) from None


async def _config(store: ConfigStore, name: str, spec: GroupSpec) -> AgentConfig:
    """The version whose turn schema names the fields: the one asked for, else the current."""
    try:
        if spec.version is None:
            return await store.get(spec.agent_id)
        return await store.get_version(spec.agent_id, spec.version)
    except AgentNotFound:
        what = f"version {spec.version} of " if spec.version is not None else ""
        raise _spec_problem(name, f"no {what}agent type '{spec.agent_id}'") from None


def _spec_problem(name: str, message: str) -> ProblemError:
    return invalid_request([FieldProblem(field=name, message=message, location="query")])
