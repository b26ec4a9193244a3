"""Sessions, per-agent analytics and the audit trail, over records shaped as the worker writes them
(worker/conversation.py, worker/server.py), in the real FerretDB: the aggregations run there."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.admin_api.conftest import Keys

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SESSIONS = "/api/v1/sessions"

pytestmark = pytest.mark.usefixtures("seeded")


def session(
    session_id: str,
    agent_id: str | None,
    user_id: str,
    start_s: int,
    length_s: int | None,
    **extra: Any,
) -> dict[str, Any]:
    started = T0 + timedelta(seconds=start_s)
    document: dict[str, Any] = {
        "_id": session_id,
        "session_id": session_id,
        "room": f"room-{session_id}",
        "agent_id": agent_id,
        "agent_version": 1,
        "routing": {"agent_id": agent_id, "strategy": "purpose", "trail": [], "rules_version": 1},
        "user_id": user_id,
        "status": "active",
        "started_at": started,
        "job_id": f"job-{session_id}",
    }
    if length_s is not None:
        document |= {
            "status": "ended",
            "ended_at": started + timedelta(seconds=length_s),
            "end_reason": "user_left",
            "transcript": [{"role": "assistant", "text": "Hello!"}, {"role": "user", "text": "Hi"}],
            "turn_count": 1,
            "summary": "A short chat.",
            "handoffs": [],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30},
        }
    return document | extra


def turn(
    session_id: str, agent_id: str, index: int, fields: dict[str, Any], status: str = "ok"
) -> dict[str, Any]:
    return {
        "_id": f"{session_id}:{index}",
        "session_id": session_id,
        "agent_id": agent_id,
        "schema_id": "x",
        "user_id": "u",
        "turn_index": index,
        "user_text": f"message {index}",
        "fields": fields,
        "status": status,
        "error": None if status == "ok" else "invalid JSON twice",
        "attempts": 1 if status == "ok" else 2,
        "created_at": T0 + timedelta(seconds=index),
    }


def support_fields(category: str | None, escalate: bool | None) -> dict[str, Any]:
    return {
        "system_response": "ok",
        "issue_category": category,
        "escalation_needed": escalate,
        "sentiment": "neutral",
    }


@pytest.fixture
async def records(database: AsyncDatabase) -> None:
    await database["sessions"].insert_many(
        [
            session("s1", "support-agent-v1", "u-1", 0, 60),
            session("s2", "support-agent-v1", "u-2", 10, 120),
            session("s3", "support-agent-v1", "u-3", 20, None),
            session("s4", "sales-agent-v1", "u-1", 30, 30, room="room-s1"),  # a second visit
            {
                "_id": "s5",
                "session_id": "s5",
                "room": "room-s5",
                "status": "refused",
                "reason": "no agent type available",
                "started_at": T0 + timedelta(seconds=40),
                "routing": {"agent_id": None},
            },
        ]
    )
    await database["turns"].insert_many(
        [
            turn("s1", "support-agent-v1", 1, support_fields("billing", True)),
            turn("s1", "support-agent-v1", 0, support_fields("billing", False)),
            turn("s2", "support-agent-v1", 0, support_fields("technical", False)),
            turn("s2", "support-agent-v1", 1, {"system_response": "?"}, status="failed"),
            turn("s4", "sales-agent-v1", 0, {"system_response": "a", "qualification_score": 40}),
            turn("s4", "sales-agent-v1", 1, {"system_response": "b", "qualification_score": 80}),
            turn("s4", "sales-agent-v1", 2, {"system_response": "c", "qualification_score": None}),
        ]
    )


async def get(api: httpx.AsyncClient, keys: Keys, path: str, **params: Any) -> dict[str, Any]:
    response = await api.get(path, params=params, headers=keys.header("viewer"))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.usefixtures("records")
async def test_sessions_newest_first_with_filters(api: httpx.AsyncClient, keys: Keys) -> None:
    listed = await get(api, keys, SESSIONS)
    assert [s["session_id"] for s in listed["items"]] == ["s5", "s4", "s3", "s2", "s1"]
    assert (
        "transcript" not in listed["items"][0]
        and listed["items"][0]["reason"] == "no agent type available"
    )

    assert [
        s["session_id"]
        for s in (await get(api, keys, SESSIONS, agent_id="support-agent-v1"))["items"]
    ] == [
        "s3",
        "s2",
        "s1",
    ]
    assert [s["session_id"] for s in (await get(api, keys, SESSIONS, user_id="u-1"))["items"]] == [
        "s4",
        "s1",
    ]
    assert [
        s["session_id"] for s in (await get(api, keys, SESSIONS, status="active"))["items"]
    ] == ["s3"]
    by_room = [s["session_id"] for s in (await get(api, keys, SESSIONS, room="room-s1"))["items"]]
    assert by_room == ["s4", "s1"]
    assert (await get(api, keys, SESSIONS, room="room-nobody-used"))["items"] == []
    window = {
        "from": (T0 + timedelta(seconds=10)).isoformat(),
        "to": (T0 + timedelta(seconds=30)).isoformat(),
    }
    assert [s["session_id"] for s in (await get(api, keys, SESSIONS, **window))["items"]] == [
        "s3",
        "s2",
    ]
    naive = {"from": "2025-03-03T09:00:10", "to": "2025-03-03T09:00:30"}
    assert [s["session_id"] for s in (await get(api, keys, SESSIONS, **naive))["items"]] == [
        "s3",
        "s2",
    ]


@pytest.mark.usefixtures("records")
async def test_sessions_cursor_pages_through_everything_once(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await get(api, keys, SESSIONS, **params)
        seen += [s["session_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["s5", "s4", "s3", "s2", "s1"]


async def test_bad_cursor_and_backwards_range_are_422(api: httpx.AsyncClient, keys: Keys) -> None:
    bad = await api.get(SESSIONS, params={"cursor": "not-a-cursor"}, headers=keys.header("viewer"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    backwards = {"from": "2025-03-04T00:00:00Z", "to": "2025-03-03T00:00:00Z"}
    response = await api.get(SESSIONS, params=backwards, headers=keys.header("viewer"))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "to"


@pytest.mark.usefixtures("records")
async def test_session_detail_joins_its_turns_in_order(api: httpx.AsyncClient, keys: Keys) -> None:
    detail = await get(api, keys, f"{SESSIONS}/s1")
    assert detail["session_id"] == "s1" and detail["agent_id"] == "support-agent-v1"
    assert detail["routing"]["strategy"] == "purpose" and detail["summary"] == "A short chat."
    assert [m["role"] for m in detail["transcript"]] == ["assistant", "user"]
    assert [t["turn_index"] for t in detail["turns"]] == [0, 1]
    assert detail["turns"][1]["fields"]["issue_category"] == "billing"
    assert detail["usage"] == {"prompt_tokens": 120, "completion_tokens": 30}
    assert detail["job_id"] == "job-s1"  # fields the API does not name still come through
    missing = await api.get(f"{SESSIONS}/nope", headers=keys.header("viewer"))
    assert (
        missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    )


@pytest.mark.usefixtures("records")
async def test_agent_stats_are_computed_by_ferretdb(api: httpx.AsyncClient, keys: Keys) -> None:
    stats = await get(api, keys, "/api/v1/agents/support-agent-v1/stats")
    assert stats["sessions"] == {
        "total": 3,
        "by_status": {"ended": 2, "active": 1},
        "ended": 2,
        "average_duration_s": 90.0,
    }
    assert stats["turns"] == {"total": 4, "by_status": {"ok": 3, "failed": 1}}
    assert stats["fields"]["issue_category"] == {
        "type": "enum",
        "counts": {"billing": 2, "technical": 1},
        "count": 3,
    }
    escalation = stats["fields"]["escalation_needed"]
    assert escalation["counts"] == {"true": 1, "false": 2} and escalation[
        "true_rate"
    ] == pytest.approx(1 / 3)
    assert stats["fields"]["issue_resolved"]["counts"] == {"null": 3}
    assert "system_response" not in stats["fields"]

    sales = await get(api, keys, "/api/v1/agents/sales-agent-v1/stats")
    assert sales["fields"]["qualification_score"] == {"type": "int", "mean": 60.0, "count": 2}

    window = {"from": T0.isoformat(), "to": (T0 + timedelta(seconds=15)).isoformat()}
    early = await get(api, keys, "/api/v1/agents/support-agent-v1/stats", **window)
    assert early["sessions"]["total"] == 2 and early["from"].startswith("2025-03-03T09:00:00")


async def test_stats_of_an_agent_without_sessions(api: httpx.AsyncClient, keys: Keys) -> None:
    stats = await get(api, keys, "/api/v1/agents/onboarding-agent-v1/stats")
    assert stats["sessions"]["total"] == 0 and stats["sessions"]["average_duration_s"] is None


async def test_events_show_admin_actions_and_worker_sessions(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    await api.post("/api/v1/agents/sales-agent-v1/pause", headers=keys.header("admin"))
    worker_event = {
        "_id": "sess_1:started",
        "type": "session.started",
        "agent_id": "support-agent-v1",
        "session_id": "sess_1",
        "room": "room-1",
        "actor": "worker",
        "at": datetime.now(UTC) + timedelta(seconds=1),
        "details": {},
    }
    await database["events"].insert_one(worker_event)

    everything = await get(api, keys, "/api/v1/events")
    assert [(e["type"], e["actor"]) for e in everything["items"]] == [
        ("session.started", "worker"),
        ("agent.paused", "test-admin"),
    ]
    assert (
        everything["items"][0]["session_id"] == "sess_1"
        and everything["items"][0]["id"] == "sess_1:started"
    )
    assert everything["items"][1]["version"] == 2
    assert [
        e["type"] for e in (await get(api, keys, "/api/v1/events", actor="worker"))["items"]
    ] == ["session.started"]
    assert (await get(api, keys, "/api/v1/events", agent_id="sales-agent-v1"))["items"][0][
        "type"
    ] == "agent.paused"

    first = await get(api, keys, "/api/v1/events", limit=1)
    second = await get(api, keys, "/api/v1/events", limit=1, cursor=first["next_cursor"])
    assert [first["items"][0]["type"], second["items"][0]["type"]] == [
        "session.started",
        "agent.paused",
    ]
    assert second["next_cursor"] is None
