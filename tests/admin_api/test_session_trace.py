"""GET /api/v1/sessions/{id}/trace: the session's trace read from Jaeger's query API
through the admin API, for viewers; 503 without a trace backend, 404 for what is not there."""

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.trace_backend import TraceBackend
from tests.admin_api.conftest import Keys, admin_settings, running_app
from tests.traces import export_probe_trace, stored_trace


async def test_without_a_trace_backend_the_trace_route_answers_503(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    reply = await api.get("/api/v1/sessions/sess_x/trace", headers=keys.header("viewer"))
    assert reply.status_code == 503
    assert "ADMIN_TRACE_QUERY_URL" in reply.json()["detail"]


async def test_a_viewer_reads_a_sessions_trace_as_spans_with_parents_and_404s_for_what_is_missing(
    endpoints: Endpoints,
    database: AsyncDatabase,
    database_name: str,
    keys: Keys,
    trace_backend: TraceBackend,
) -> None:
    trace_id = export_probe_trace(trace_backend)
    stored_trace(trace_backend, trace_id)
    sessions = database["sessions"]
    await sessions.insert_many(
        [
            {"_id": "sess_traced", "trace_id": trace_id},
            {"_id": "sess_untraced"},
            {"_id": "sess_gone", "trace_id": "0af7651916cd43dd8448eb211c80319c"},
        ]
    )
    settings = admin_settings(
        endpoints, database_name, admin_trace_query_url=trace_backend.query_url
    )
    async with running_app(settings) as (_, api):
        viewer = keys.header("viewer")
        reply = await api.get("/api/v1/sessions/sess_traced/trace", headers=viewer)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["trace_id"] == trace_id
        spans = {span["name"]: span for span in body["spans"]}
        assert set(spans) == {"outer", "inner"}
        assert spans["outer"]["parent_span_id"] is None
        assert spans["inner"]["parent_span_id"] == spans["outer"]["span_id"]
        assert spans["outer"]["start_ms"] == 0 and spans["outer"]["service"] == "switchboard-probe"
        assert spans["inner"]["attributes"]["n"] == 1 and not spans["inner"]["error"]

        for missing in ("sess_unknown", "sess_untraced", "sess_gone"):
            reply = await api.get(f"/api/v1/sessions/{missing}/trace", headers=viewer)
            assert reply.status_code == 404, (missing, reply.text)
        token_role = await api.get(
            "/api/v1/sessions/sess_traced/trace", headers=keys.header("token")
        )
        assert token_role.status_code == 403
