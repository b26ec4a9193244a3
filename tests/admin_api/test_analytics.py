"""GET /api/v1/analytics/compare over session and turn records inserted in the shape the
worker stores them (worker/sinks/records.py: the session's start and end records merged, its
turns with fields and latency marks), in the real FerretDB: two groups with different
distributions, and the sessions a group must leave out."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.admin_api.conftest import Keys

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
COMPARE = "/api/v1/analytics/compare"
SUPPORT, SALES = "support-agent-v1", "sales-agent-v1"

STARTS_S = {"a1": 100, "a2": 110, "a3": 120, "x1": 130, "b1": 105, "b2": 115}
"""When the sessions with turns started, in seconds after T0."""

pytestmark = pytest.mark.usefixtures("seeded")


def ended_session(
    session_id: str,
    routed_to: str,
    start_s: int,
    *,
    turn_count: int,
    end_reason: str,
    tokens: list[tuple[int, int]] | None,
    version: int = 1,
    status: str = "ended",
    strategy: str = "ab_split",
    escalated: bool = False,
    handed_off_to: str | None = None,
) -> dict[str, Any]:
    started = T0 + timedelta(seconds=start_s)
    at = started + timedelta(seconds=5)
    document: dict[str, Any] = {
        "_id": session_id,
        "session_id": session_id,
        "room": f"room-{session_id}",
        "agent_id": handed_off_to or routed_to,  # the hand-off moves it; routing keeps the variant
        "agent_version": version,
        "routing": {"agent_id": routed_to, "strategy": strategy, "trail": [], "rules_version": 2},
        "user_id": f"user-{session_id}",
        "status": status,
        "started_at": started,
        "ended_at": started + timedelta(seconds=60),
        "end_reason": end_reason,
        "transcript": [{"role": "assistant", "text": "Hello!"}],
        "transcript_dropped": 0,
        "turn_count": turn_count,
        "summary": "A chat.",
        "handoffs": [
            {
                "from_agent_id": routed_to,
                "to_agent_id": handed_off_to,
                "strategy": "intent",
                "at": at,
            }
        ]
        if handed_off_to
        else [],
        "escalations": [{"agent_id": routed_to, "reason": "asked", "then": "continue", "at": at}]
        if escalated
        else [],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
    }
    if tokens is not None:
        document["cost"] = {
            "llm": [
                {"model": f"m{i}", "input_tokens": i_n, "output_tokens": o_n, "requests": 1}
                for i, (i_n, o_n) in enumerate(tokens)
            ],
            "stt_audio_s": 0.0,
            "tts_characters": 0,
            "tool_calls": 0,
        }
    if status == "aborted":  # the stale-session sweep writes no summary, usage or cost
        for key in ("summary", "usage"):
            document.pop(key)
    return document


def turn(
    session_id: str,
    index: int,
    agent_id: str,
    fields: dict[str, Any] | None,
    latency_ms: dict[str, int],
    status: str = "ok",
) -> dict[str, Any]:
    return {
        "_id": f"{session_id}:{index}",
        "session_id": session_id,
        "agent_id": agent_id,
        "agent_version": 1,
        "schema_id": "x",
        "user_id": f"user-{session_id}",
        "turn_index": index,
        "user_text": f"message {index}",
        "reply": "reply",
        "tool_calls": [],
        "latency_ms": latency_ms,
        "latency_from": "message_received",
        "waterfall": [],
        "fields": {"system_response": "reply"} | (fields or {}),
        "status": status,
        "error": None if status == "ok" else "invalid JSON twice",
        "attempts": 1,
        # replied within its session, as every turn is: the read bounds turns by their sessions
        "created_at": T0 + timedelta(seconds=STARTS_S[session_id] + 1 + index),
    }


def support(category: str | None, resolved: bool | None, **more: Any) -> dict[str, Any]:
    return {"issue_category": category, "issue_resolved": resolved} | more


@pytest.fixture
async def records(database: AsyncDatabase) -> None:
    await database["sessions"].insert_many(
        [
            # group a: support version 1
            ended_session(
                "a1",
                SUPPORT,
                STARTS_S["a1"],
                turn_count=2,
                end_reason="user_left",
                tokens=[(100, 20), (50, 10)],
                escalated=True,
            ),
            ended_session(
                "a2",
                SUPPORT,
                STARTS_S["a2"],
                turn_count=4,
                end_reason="user_left",
                tokens=[(250, 50)],
            ),
            ended_session(
                "a3",
                SUPPORT,
                STARTS_S["a3"],
                turn_count=3,
                end_reason="worker_lost",
                tokens=None,
                status="aborted",
            ),
            # not in group a: another version, a pinned test, still active, before `since`
            ended_session(
                "x1",
                SUPPORT,
                STARTS_S["x1"],
                turn_count=9,
                end_reason="user_left",
                tokens=None,
                version=2,
            ),
            ended_session(
                "x2",
                SUPPORT,
                140,
                turn_count=9,
                end_reason="user_left",
                tokens=None,
                strategy="pinned",
            ),
            ended_session("x3", SUPPORT, 150, turn_count=9, end_reason="x", tokens=None)
            | {"status": "active"},
            ended_session("x4", SUPPORT, 10, turn_count=9, end_reason="early", tokens=None),
            # an eval run's room, routed like a caller's
            ended_session("x5", SUPPORT, 160, turn_count=9, end_reason="user_left", tokens=None)
            | {"eval_run_id": "evr_0123"},
            # group b: sales, every version; b1 was handed off to support and stays sales'
            ended_session(
                "b1",
                SALES,
                STARTS_S["b1"],
                turn_count=2,
                end_reason="user_left",
                tokens=[(80, 8)],
                handed_off_to=SUPPORT,
            ),
            ended_session(
                "b2",
                SALES,
                STARTS_S["b2"],
                turn_count=1,
                end_reason="agent_ended",
                tokens=[(120, 12)],
                version=3,
            ),
        ]
    )
    await database["turns"].insert_many(
        [
            turn("a1", 0, SUPPORT, support("billing", True), {"first_text": 100, "fields": 300}),
            turn("a1", 1, SUPPORT, support("billing", False), {"first_text": 200}),
            turn(
                "a2",
                0,
                SUPPORT,
                support("technical", True),
                {"first_text": 300, "first_audio": 500},
            ),
            turn("a2", 1, SUPPORT, None, {"first_text": 400}, status="failed"),
            turn("a2", 2, SUPPORT, support(None, None, follow_up_action="call back"), {}),
            turn("x1", 0, SUPPORT, support("account", True), {"first_text": 9000}),
            turn(
                "b1",
                0,
                SALES,
                {"qualification_score": 40, "customer_intent": "browsing"},
                {"first_text": 50},
            ),
            turn("b1", 1, SUPPORT, support("billing", True), {"first_text": 70}),
            turn("b2", 0, SALES, {"qualification_score": 80, "customer_intent": "evaluating"}, {}),
        ]
    )


async def compare(api: httpx.AsyncClient, keys: Keys, **params: Any) -> httpx.Response:
    return await api.get(COMPARE, params=params, headers=keys.header("viewer"))


def interval(value: dict[str, Any]) -> tuple[float, float]:
    low, high = value["ci95"]
    return round(low, 4), round(high, 4)


@pytest.mark.usefixtures("records")
async def test_two_groups_come_back_with_their_rates_means_and_intervals(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    response = await compare(
        api, keys, a=f"{SUPPORT}@1", b=SALES, since=(T0 + timedelta(seconds=60)).isoformat()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    a, b = body["a"], body["b"]
    assert body["since"].startswith("2026-05-04T10:01:00") and body["until"] is None

    assert (a["agent_id"], a["version"], a["sessions"], a["truncated"]) == (SUPPORT, 1, 3, False)
    assert (b["agent_id"], b["version"], b["sessions"], b["truncated"]) == (SALES, None, 2, False)

    # turns per session: 2, 4, 3 -> 3 +- t(0.975, 2) * 1 / sqrt(3)
    assert a["turns_per_session"]["mean"] == 3.0 and a["turns_per_session"]["n"] == 3
    assert interval(a["turns_per_session"]) == (0.5159, 5.4841)
    # 1 escalated of 3 (Wilson), no hand-off; b: 1 hand-off of 2
    assert a["escalation_rate"] | {"ci95": None} == {
        "value": pytest.approx(1 / 3),
        "successes": 1,
        "n": 3,
        "ci95": None,
    }
    assert interval(a["escalation_rate"]) == (0.0615, 0.7923)
    assert a["handoff_rate"]["successes"] == 0 and interval(a["handoff_rate"]) == (0.0, 0.5615)
    assert (b["handoff_rate"]["successes"], b["handoff_rate"]["n"]) == (1, 2)
    assert interval(b["handoff_rate"]) == (0.0945, 0.9055)
    # a reason only the other group saw is listed at 0 of this group's sessions, with its interval
    assert [(r["reason"], r["rate"]["successes"], r["rate"]["n"]) for r in a["end_reasons"]] == [
        ("user_left", 2, 3),
        ("worker_lost", 1, 3),
        ("agent_ended", 0, 3),
    ]
    assert [r["reason"] for r in b["end_reasons"]] == ["agent_ended", "user_left", "worker_lost"]
    assert interval(b["end_reasons"][2]["rate"]) == (0.0, 0.6576)

    # fields: rates of the type's answered turns (4 in a: the failed one is not answered)
    category = {v["value"]: v["rate"] for v in a["fields"]["issue_category"]["values"]}
    assert {k: (r["successes"], r["n"]) for k, r in category.items()} == {
        "billing": (2, 4),
        "technical": (1, 4),
        None: (1, 4),
    }
    assert interval(category["billing"]) == (0.15, 0.85)
    resolved = [
        (v["value"], v["rate"]["successes"]) for v in a["fields"]["issue_resolved"]["values"]
    ]
    assert resolved == [(True, 2), (False, 1), (None, 1)]
    follow_up = a["fields"]["follow_up_action"]["values"]
    assert [(v["value"], v["rate"]["successes"]) for v in follow_up] == [
        (None, 3),
        ("call back", 1),
    ]
    assert "system_response" not in a["fields"] and "pain_points" not in b["fields"]  # a list
    # b's numbers: its own turns only (b1's second turn was support's, after the hand-off)
    score = b["fields"]["qualification_score"]["mean"]
    assert (score["mean"], score["n"]) == (60.0, 2) and interval(score) == (-194.1241, 314.1241)
    intents = b["fields"]["customer_intent"]["values"]
    assert [(v["value"], v["rate"]["n"]) for v in intents] == [("browsing", 2), ("evaluating", 2)]

    # latency: every mark present, over the turns of the group's sessions that have it
    first_text = a["latency_ms"]["first_text"]
    assert (first_text["mean"], first_text["n"]) == (250.0, 4)
    assert interval(first_text) == (44.574, 455.426)
    assert a["latency_ms"]["fields"] == {"mean": 300.0, "n": 1, "ci95": None}
    assert a["latency_ms"]["first_audio"]["n"] == 1
    assert b["latency_ms"]["first_text"]["mean"] == 60.0  # b1's two turns, the hand-off's too
    assert set(b["latency_ms"]) == {"first_text"}

    # tokens per session, every model summed, over the sessions with a cost (a3 was aborted)
    assert a["tokens_per_session"]["input"] | {"ci95": None} == {
        "mean": 200.0,
        "n": 2,
        "ci95": None,
    }
    assert interval(a["tokens_per_session"]["input"]) == (-435.3102, 835.3102)
    assert a["tokens_per_session"]["output"]["mean"] == 40.0
    assert b["tokens_per_session"]["input"]["mean"] == 100.0

    # a window with nothing in it: empty groups, no values, no intervals
    response = await compare(api, keys, a=SUPPORT, b=f"{SUPPORT}@1", until=T0.isoformat())
    empty = response.json()["a"]
    assert empty["sessions"] == 0 and empty["escalation_rate"] == {
        "value": None,
        "successes": 0,
        "n": 0,
        "ci95": None,
    }
    assert empty["turns_per_session"] == {"mean": None, "n": 0, "ci95": None}


async def test_a_bad_spec_or_window_is_a_422_naming_the_parameter(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    cases = [
        ({"a": "Not A Spec!", "b": SALES}, "a"),
        ({"a": SUPPORT, "b": f"{SALES}@0"}, "b"),
        ({"a": SUPPORT, "b": f"{SALES}@two"}, "b"),
        ({"a": "ghost-agent", "b": SALES}, "a"),
        ({"a": SUPPORT, "b": f"{SALES}@9"}, "b"),
        ({"b": SALES}, "a"),
        (
            {"a": SUPPORT, "b": SALES, "since": "2026-05-04T10:00:00Z", "until": "2026-05-04"},
            "until",
        ),
        ({"a": SUPPORT, "b": SALES, "since": "yesterday"}, "since"),
        ({"a": SUPPORT, "b": SALES, "until": "0001-01-01T00:00:00+14:00"}, "until"),
    ]
    for params, name in cases:
        response = await compare(api, keys, **params)
        assert response.status_code == 422, (params, response.text)
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == [name], (params, problem)
    missing = await compare(api, keys, a=SUPPORT, b=f"{SALES}@9")
    assert "no version 9 of agent type 'sales-agent-v1'" in missing.json()["detail"]
