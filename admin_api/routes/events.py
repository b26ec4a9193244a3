"""The audit trail: admin actions and session starts/ends, newest first (schema: events.py)."""

from typing import Annotated

from fastapi import APIRouter, Query

from admin_api.deps import Events, ReaderKey
from admin_api.events import EventPage
from admin_api.problems import problem_responses
from admin_api.routes import API_V1
from admin_api.routes.sessions import cursor_problem, time_range
from admin_api.storage import InvalidCursor, IsoDatetime

router = APIRouter(prefix=API_V1, tags=["events"])

Filter = Annotated[str | None, Query(min_length=1, max_length=256)]


@router.get("/events", responses=problem_responses(401, 403, 422, 503))
async def list_events(
    caller: ReaderKey,
    events: Events,
    type: Annotated[
        str | None, Query(description="e.g. agent.paused, session.started", max_length=64)
    ] = None,
    agent_id: Filter = None,
    session_id: Filter = None,
    actor: Annotated[
        str | None, Query(description="An API key name, or `worker`.", max_length=128)
    ] = None,
    start: Annotated[IsoDatetime | None, Query(alias="from")] = None,
    end: Annotated[IsoDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> EventPage:
    """Who did what to which agent type, when, and which version it produced."""
    start, end = time_range(start, end)
    try:
        return await events.page(
            kind=type,
            agent_id=agent_id,
            session_id=session_id,
            actor=actor,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor as exc:
        raise cursor_problem(exc) from None
