"""Routing rules over HTTP, and resolve: the worker's own Router, explained entry by entry."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.capacity import CapacityGuard
from agent_configs.routing.availability import NOT_IN_POOL, StoreAvailability
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.router import Router
from agent_configs.routing.rules import DEFAULT_RULES, RulesStore, StaticRules
from agent_configs.store import ConfigStore
from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app

RULES = "/api/v1/routing"
RESOLVE = "/api/v1/routing/resolve"

pytestmark = pytest.mark.usefixtures("seeded")


def default_chain() -> list[dict[str, Any]]:
    return [entry.model_dump() for entry in DEFAULT_RULES.chain]


def if_match(keys: Keys, version: int) -> dict[str, str]:
    return keys.header("admin") | {"If-Match": f'"{version}"'}


async def resolve(api: httpx.AsyncClient, keys: Keys, **body: Any) -> dict[str, Any]:
    response = await api.post(RESOLVE, json=body, headers=keys.header("viewer"))
    assert response.status_code == 200, response.text
    return response.json()


async def worker_router_decision(database: AsyncDatabase, metadata: Any) -> dict[str, Any]:
    """What the worker's router decides: the same classes, built the way worker/server.py does."""
    rules = await RulesStore(database).current()
    availability = StoreAvailability(
        ConfigStore(database), CapacityGuard(database, stale_after_s=90.0).in_use
    )
    decision = await Router(StaticRules(rules), availability).route(
        RoutingContext.from_metadata(metadata)
    )
    return decision.model_dump(mode="json", exclude={"decided_at"})


async def test_default_rules_read_and_replace(api: httpx.AsyncClient, keys: Keys) -> None:
    current = await api.get(RULES, headers=keys.header("viewer"))
    assert current.status_code == 200 and current.headers["etag"] == '"0"'
    assert current.json()["version"] == 0 and current.json()["chain"] == default_chain()

    chain = default_chain()
    chain[1]["params"]["agents"]["billing"] = "sales-agent-v1"
    saved = await api.put(RULES, json={"chain": chain}, headers=if_match(keys, 0))
    assert saved.status_code == 200, saved.text
    assert saved.headers["etag"] == '"1"' and saved.json()["version"] == 1
    again = await api.put(RULES, json=saved.json(), headers=if_match(keys, 1))  # GET/PUT round trip
    assert again.status_code == 200 and again.json()["version"] == 2
    assert (await api.get(RULES, headers=keys.header("viewer"))).json()["chain"] == chain

    events = (
        await api.get(
            "/api/v1/events", params={"type": "routing.updated"}, headers=keys.header("admin")
        )
    ).json()
    assert [e["version"] for e in events["items"]] == [2, 1]


async def test_stale_or_missing_if_match(api: httpx.AsyncClient, keys: Keys) -> None:
    await api.put(RULES, json={"chain": default_chain()}, headers=if_match(keys, 0))
    stale = await api.put(RULES, json={"chain": default_chain()}, headers=if_match(keys, 0))
    assert stale.status_code == 412 and stale.json()["current_version"] == 1
    missing = await api.put(RULES, json={"chain": default_chain()}, headers=keys.header("admin"))
    assert missing.status_code == 428


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda c: c.__setitem__(0, {"strategy": "vip_desk"}),
            "chain.0.strategy",
            "unknown routing strategy",
        ),
        (
            lambda c: c[2]["params"]["rules"][0].__setitem__("when", {"tier": {"gtee": 1}}),
            "chain.2.params.rules.0.when.tier",
            "unknown operator",
        ),
        (
            lambda c: c[1]["params"]["agents"].__setitem__("vip", "ghost-agent"),
            "chain.1.params",
            "ghost-agent",
        ),
        (lambda c: c[0].__setitem__("colour", "red"), "chain.0.colour", "Extra inputs"),
    ],
)
async def test_invalid_rules_are_422_with_field_paths_and_nothing_is_saved(
    api: httpx.AsyncClient, keys: Keys, change: Any, field: str, words: str
) -> None:
    chain = default_chain()
    change(chain)
    response = await api.put(RULES, json={"chain": chain}, headers=if_match(keys, 0))
    assert (
        response.status_code == 422
        and response.headers["content-type"] == "application/problem+json"
    )
    errors = response.json()["errors"]
    assert any(e["field"].startswith(field) and words in e["message"] for e in errors), errors
    assert (await api.get(RULES, headers=keys.header("viewer"))).json()["version"] == 0


@pytest.mark.parametrize(
    "metadata",
    [
        {"purpose": "sales", "user_id": "u-1"},
        {"agent_id": "onboarding-agent-v1", "purpose": "sales"},
        {"user_id": "u-2", "user_details": {"is_new_user": True}},
        {"user_id": "u-3", "user_details": {"tier": "premium"}},
        {"agent_id": "nobody-agent"},
        '{"purpose": "interview"}',
        "{not json",
        {"purpose": 42, "user_details": [1]},
        None,
    ],
)
async def test_resolve_is_what_the_worker_router_decides(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase, metadata: Any
) -> None:
    resolved = await resolve(api, keys, metadata=metadata)
    expected = await worker_router_decision(database, metadata)
    assert {k: v for k, v in resolved.items() if k not in ("decided_at", "agent_name")} == expected
    assert resolved["agent_name"] == "switchboard"


async def test_a_paused_type_is_skipped_with_paused_in_the_trail(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    assert (await resolve(api, keys, metadata={"purpose": "sales"}))["agent_id"] == "sales-agent-v1"
    await api.post("/api/v1/agents/sales-agent-v1/pause", headers=keys.header("admin"))

    decision = await resolve(api, keys, metadata={"purpose": "sales"})
    purpose = next(e for e in decision["trail"] if e["strategy"] == "purpose")
    assert purpose == {
        "strategy": "purpose",
        "agent_id": "sales-agent-v1",
        "outcome": "skipped",
        "reason": "paused",
    }
    assert (decision["agent_id"], decision["strategy"]) == ("support-agent-v1", "default")
    assert {k: v for k, v in decision.items() if k not in ("decided_at", "agent_name")} == (
        await worker_router_decision(database, {"purpose": "sales"})
    )

    await api.post("/api/v1/agents/sales-agent-v1/resume", headers=keys.header("admin"))
    assert (await resolve(api, keys, metadata={"purpose": "sales"}))["agent_id"] == "sales-agent-v1"


async def test_a_full_type_is_skipped_like_the_worker_does(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    merge = keys.header("admin") | {"If-Match": '"1"'}
    await api.patch(
        "/api/v1/agents/sales-agent-v1", json={"max_concurrent_sessions": 1}, headers=merge
    )
    slot = {
        "agent_id": "sales-agent-v1",
        "slot": 0,
        "session_id": "sess_x",
        "heartbeat_at": datetime.now(UTC),
    }
    await database["session_slots"].insert_one(slot)
    decision = await resolve(api, keys, metadata={"purpose": "sales"})
    assert (
        decision["trail"][1]["reason"] == "full: 1/1 sessions"
        and decision["agent_id"] == "support-agent-v1"
    )

    stale = datetime.now(UTC) - timedelta(seconds=300)  # a killed worker's slot no longer counts
    await database["session_slots"].update_one(
        {"session_id": "sess_x"}, {"$set": {"heartbeat_at": stale}}
    )
    assert (await resolve(api, keys, metadata={"purpose": "sales"}))["agent_id"] == "sales-agent-v1"


async def test_resolve_for_a_worker_pool(api: httpx.AsyncClient, keys: Keys) -> None:
    decision = await resolve(api, keys, metadata={"purpose": "sales"}, pool=["support-agent-v1"])
    assert decision["trail"][1] == {
        "strategy": "purpose",
        "agent_id": "sales-agent-v1",
        "outcome": "skipped",
        "reason": NOT_IN_POOL,
    }
    assert decision["agent_id"] == "support-agent-v1"


async def test_resolve_previews_unsaved_rules_at_a_given_time(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    window = {
        "days": ["mon"],
        "start": "09:00",
        "end": "17:00",
        "timezone": "UTC",
        "agent_id": "sales-agent-v1",
    }
    rules = {"chain": [{"strategy": "time_window", "params": {"windows": [window]}}]}
    monday_noon = "2025-01-06T12:00:00Z"
    inside = await resolve(api, keys, metadata={}, rules=rules, at=monday_noon)
    assert inside["agent_id"] == "sales-agent-v1" and inside["rules_version"] == 0
    assert inside["decided_at"].startswith("2025-01-06T12:00:00")
    outside = await resolve(api, keys, metadata={}, rules=rules, at="2025-01-06T20:00:00")
    assert outside["agent_id"] is None and outside["trail"][0]["outcome"] == "no_proposal"
    assert (await api.get(RULES, headers=keys.header("viewer"))).json()["version"] == 0

    invalid = {
        "chain": [
            {"strategy": "time_window", "params": {"windows": [window | {"timezone": "Mars/Base"}]}}
        ]
    }
    response = await api.post(RESOLVE, json={"rules": invalid}, headers=keys.header("viewer"))
    assert response.status_code == 422 and "Mars/Base" in response.text


async def test_resolve_sees_a_saved_change_at_once_despite_the_rules_cache(
    endpoints: Endpoints, database_name: str, keys: Keys
) -> None:
    settings = admin_settings(endpoints, database_name, routing_rules_ttl_s=600.0)
    async with running_app(settings) as (_, api):
        assert (await resolve(api, keys, metadata={"purpose": "sales"}))[
            "agent_id"
        ] == "sales-agent-v1"
        chain = default_chain()
        chain[1]["params"]["agents"]["sales"] = "onboarding-agent-v1"
        assert (
            await api.put(RULES, json={"chain": chain}, headers=if_match(keys, 0))
        ).status_code == 200
        assert (await resolve(api, keys, metadata={"purpose": "sales"}))[
            "agent_id"
        ] == "onboarding-agent-v1"
