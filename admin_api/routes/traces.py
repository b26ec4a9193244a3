"""A session's trace, read from the trace backend through the admin API: the
console's session page draws it, since Jaeger built from the Go module proxy has no UI."""

from typing import Annotated

from fastapi import APIRouter, Path

from admin_api.deps import ReaderKey, ServicesDep
from admin_api.problems import ProblemError, problem_responses
from admin_api.routes import API_V1
from admin_api.session_records import SESSIONS
from admin_api.traces import SessionTrace, TraceBackendError, TraceNotFound, read_trace

router = APIRouter(prefix=API_V1, tags=["sessions"])


@router.get(
    "/sessions/{session_id}/trace", responses=problem_responses(401, 403, 404, 422, 502, 503)
)
async def get_session_trace(
    caller: ReaderKey,
    session_id: Annotated[str, Path(min_length=1, max_length=256)],
    services: ServicesDep,
) -> SessionTrace:
    """The session's spans as a flat list (parent ids link them), times in ms from the first.
    404 when the session is unknown, had no trace (export was off) or its trace is not in the
    backend (yet: spans leave the worker in batches, the last ones at the session's end);
    503 when no trace backend is configured (ADMIN_TRACE_QUERY_URL)."""
    settings = services.settings
    if not settings.admin_trace_query_url:
        raise ProblemError(
            503,
            "no-trace-backend",
            "No trace backend configured",
            "set ADMIN_TRACE_QUERY_URL to the trace backend's query API (Jaeger) to read traces",
        )
    record = await services.database[SESSIONS].find_one({"_id": session_id}, {"trace_id": 1})
    if record is None:
        raise ProblemError(
            404, "session-not-found", "Session not found", f"no session '{session_id}'"
        )
    trace_id = record.get("trace_id")
    if not trace_id:
        raise ProblemError(
            404,
            "trace-not-found",
            "Trace not found",
            f"session '{session_id}' recorded no trace (its worker did not export traces)",
        )
    try:
        return await read_trace(
            settings.admin_trace_query_url,
            str(trace_id),
            max_bytes=settings.admin_trace_max_bytes,
            timeout_s=settings.admin_trace_timeout_s,
        )
    except TraceNotFound:
        raise ProblemError(
            404,
            "trace-not-found",
            "Trace not found",
            f"trace {trace_id} of session '{session_id}' is not in the trace backend (yet)",
            trace_id=trace_id,
        ) from None
    except TraceBackendError as exc:
        raise ProblemError(502, "trace-backend-failed", "Trace backend failed", str(exc)) from None
