"""Sessions the worker recorded, one session in detail, and per-agent analytics over them."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from admin_api.deps import ReaderKey, ServicesDep, Sessions, Store
from admin_api.problems import FieldProblem, ProblemError, invalid_request, problem_responses
from admin_api.routes import API_V1
from admin_api.routes.agents import AgentId
from admin_api.session_records import SessionDetail, SessionPage
from admin_api.stats import AgentStats, agent_stats
from admin_api.storage import InvalidCursor, IsoDatetime

router = APIRouter(prefix=API_V1, tags=["sessions"])

Since = Annotated[
    IsoDatetime | None, Query(alias="from", description="Inclusive start (ISO 8601).")
]
Until = Annotated[IsoDatetime | None, Query(alias="to", description="Exclusive end (ISO 8601).")]
Filter = Annotated[str | None, Query(min_length=1, max_length=256)]


def time_range(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Both bounds in UTC (a time without offset means UTC, as in MongoDB), `from` before `to`."""
    start, end = _as_utc(start), _as_utc(end)
    if start is not None and end is not None and start >= end:
        raise invalid_request(
            [FieldProblem(field="to", message="must be after `from`", location="query")]
        )
    return start, end


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def cursor_problem(exc: InvalidCursor) -> ProblemError:
    return invalid_request([FieldProblem(field="cursor", message=str(exc), location="query")])


@router.get("/sessions", responses=problem_responses(401, 403, 422, 503))
async def list_sessions(
    caller: ReaderKey,
    sessions: Sessions,
    agent_id: Filter = None,
    user_id: Filter = None,
    room: Filter = None,
    status: Annotated[
        str | None, Query(description="active, ended or refused", max_length=32)
    ] = None,
    channel: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="A channel binding's id."),
    ] = None,
    start: Since = None,
    end: Until = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SessionPage:
    """Newest first by start time; `from`/`to` bound the start time. No transcripts here.
    `room` lists one room's sessions (a room can hold several in turn: a re-dispatch, a
    second visit under the same name). `channel` lists the sessions that came in by one
    channel binding."""
    start, end = time_range(start, end)
    try:
        return await sessions.page(
            agent_id=agent_id,
            user_id=user_id,
            room=room,
            status=status,
            channel=channel,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor as exc:
        raise cursor_problem(exc) from None


@router.get("/sessions/{session_id}", responses=problem_responses(401, 403, 404, 422, 503))
async def get_session(
    caller: ReaderKey,
    session_id: Annotated[str, Path(min_length=1, max_length=256)],
    sessions: Sessions,
) -> SessionDetail:
    """Routing decision, transcript, the structured turns in order, summary and usage."""
    detail = await sessions.detail(session_id)
    if detail is None:
        raise ProblemError(
            404, "session-not-found", "Session not found", f"no session '{session_id}'"
        )
    return detail


@router.get(
    "/agents/{agent_id}/stats",
    responses=problem_responses(401, 403, 404, 422, 503),
    response_model_by_alias=True,
    tags=["agents"],
)
async def get_agent_stats(
    caller: ReaderKey,
    agent_id: AgentId,
    store: Store,
    services: ServicesDep,
    start: Since = None,
    end: Until = None,
) -> AgentStats:
    """Sessions, mean duration, and the distribution of each enum / bool / numeric turn field."""
    start, end = time_range(start, end)
    config = await store.get(agent_id)
    return await agent_stats(services.database, config, start, end)
