"""POST /token: what the JWT carries, who may name rooms and identities, the audit event,
validation and size limits, pools, rate limit, a real join."""

import json
from typing import Any

import httpx
import jwt
import pytest
from livekit import api as livekit_api
from livekit import rtc
from livekit.api.access_token import Claims
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.auth import API_KEYS, KeyRing, Role, Scope
from agent_configs.models import AgentStatus
from agent_configs.store import ConfigStore
from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app

TOKEN = "/api/v1/token"


def claims_of(endpoints: Endpoints, token: str) -> Claims:
    verifier = livekit_api.TokenVerifier(endpoints.livekit_api_key, endpoints.livekit_api_secret)
    return verifier.verify(token)


async def mint(
    api: httpx.AsyncClient, keys: Keys, body: dict[str, Any], role: str = "token"
) -> dict[str, Any]:
    response = await api.post(TOKEN, json=body, headers=keys.header(role))
    assert response.status_code == 200, response.text
    return response.json()


async def test_token_carries_metadata_grant_and_explicit_dispatch(
    api: httpx.AsyncClient, keys: Keys, endpoints: Endpoints
) -> None:
    metadata = {
        "purpose": "support",
        "user_id": "u-1",
        "user_details": {"tier": "premium"},
        "locale": "de",
    }
    minted = await mint(
        api,
        keys,
        {"room": "room-a1", "identity": "alice", "name": "Alice", "metadata": metadata},
        role="token_scoped",
    )
    assert minted["room"] == "room-a1" and minted["identity"] == "alice"
    assert minted["server_url"] == endpoints.livekit_url and minted["agent_name"] == "switchboard"

    claims = claims_of(endpoints, minted["token"])
    assert claims.identity == "alice" and claims.name == "Alice"
    assert json.loads(claims.metadata) == metadata
    assert claims.video.room == "room-a1" and claims.video.room_join
    dispatch = claims.room_config.agents[0]
    assert len(claims.room_config.agents) == 1
    assert dispatch.agent_name == "switchboard" and json.loads(dispatch.metadata) == metadata


async def test_room_and_identity_are_generated_and_the_ttl_applies(
    endpoints: Endpoints, database_name: str, keys: Keys
) -> None:
    settings = admin_settings(endpoints, database_name, admin_api_token_ttl_s=120)
    async with running_app(settings) as (_, api):
        first = await mint(api, keys, {})
        second = await mint(api, keys, {"metadata": {"user_id": 12345}})
    assert first["room"] != second["room"] and first["identity"] != second["identity"]
    assert not claims_of(endpoints, first["token"]).metadata
    assert json.loads(claims_of(endpoints, second["token"]).metadata) == {"user_id": 12345}
    decoded = jwt.decode(first["token"], options={"verify_signature": False})
    assert decoded["exp"] - decoded["nbf"] == 120


async def test_pools_dispatch_the_agent_name_of_the_routed_type(
    endpoints: Endpoints, database_name: str, keys: Keys, seeded: None
) -> None:
    pools = {"sales-agent-v1": "switchboard-sales"}
    settings = admin_settings(endpoints, database_name, admin_api_agent_names=pools)
    async with running_app(settings) as (_, api):
        sales = await mint(api, keys, {"metadata": {"purpose": "sales"}})
        support = await mint(api, keys, {"metadata": {"purpose": "support"}})
        resolved = await api.post(
            "/api/v1/routing/resolve",
            json={"metadata": {"purpose": "sales"}},
            headers=keys.header("viewer"),
        )
    assert sales["agent_name"] == "switchboard-sales" == resolved.json()["agent_name"]
    assert (
        claims_of(endpoints, sales["token"]).room_config.agents[0].agent_name == "switchboard-sales"
    )
    assert support["agent_name"] == "switchboard"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": {"purpose": 42}}, "metadata.purpose"),
        ({"metadata": {"agent_id": "Not An Id"}}, "metadata.agent_id"),
        ({"metadata": {"user_details": "premium"}}, "metadata.user_details"),
        ({"metadata": {"user_details": {"blob": "x" * 70_000}}}, "metadata"),
        ({"room": "has spaces"}, "room"),
        ({"identity": "line\nbreak"}, "identity"),
        ({"token_ttl": 5}, "token_ttl"),
    ],
)
async def test_invalid_requests_are_422_with_the_field(
    api: httpx.AsyncClient, keys: Keys, body: dict[str, Any], field: str
) -> None:
    response = await api.post(TOKEN, json=body, headers=keys.header("token"))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_huge_bodies_are_413_before_parsing(api: httpx.AsyncClient, keys: Keys) -> None:
    body = json.dumps({"metadata": {"user_details": {"blob": "x" * (2 << 20)}}})
    response = await api.post(
        TOKEN, content=body, headers=keys.header("token") | {"Content-Type": "application/json"}
    )
    assert (
        response.status_code == 413
        and response.headers["content-type"] == "application/problem+json"
    )

    async def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 65536

    streamed = await api.post(TOKEN, content=chunks(), headers=keys.header("token"))
    assert streamed.status_code == 413


async def test_rate_limit_per_key(endpoints: Endpoints, database_name: str, keys: Keys) -> None:
    settings = admin_settings(
        endpoints, database_name, admin_api_token_rate_per_s=0.2, admin_api_token_burst=2
    )
    async with running_app(settings) as (_, api):
        codes = [
            (await api.post(TOKEN, json={}, headers=keys.header("token"))).status_code
            for _ in range(3)
        ]
        limited = await api.post(TOKEN, json={}, headers=keys.header("token"))
        other_key = await api.post(TOKEN, json={}, headers=keys.header("admin"))
    assert codes == [200, 200, 429]
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 5
    assert limited.json()["type"] == "urn:switchboard:problem:rate-limited"
    assert other_key.status_code == 200


async def test_a_real_client_joins_with_the_token(api: httpx.AsyncClient, keys: Keys) -> None:
    metadata = {"purpose": "support", "user_id": "u-join"}
    minted = await mint(
        api, keys, {"identity": "joiner", "metadata": metadata}, role="token_scoped"
    )
    room = rtc.Room()
    try:
        await room.connect(minted["server_url"], minted["token"])
        assert room.isconnected() and room.name == minted["room"]
        assert room.local_participant.identity == "joiner"
        assert json.loads(room.local_participant.metadata) == metadata
    finally:
        await room.disconnect()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"room": "victims-room"}, ["room"]),
        ({"identity": "victim"}, ["identity"]),
        ({"room": "victims-room", "identity": "victim"}, ["room", "identity"]),
    ],
)
async def test_a_key_without_the_scope_may_not_name_the_room_or_identity(
    api: httpx.AsyncClient, keys: Keys, body: dict[str, Any], fields: list[str]
) -> None:
    response = await api.post(TOKEN, json=body, headers=keys.header("token"))
    assert response.status_code == 403, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:switchboard:problem:scope-required"
    assert [e["field"] for e in problem["errors"]] == fields
    assert all(f"token:{e['field']}" in e["message"] for e in problem["errors"])
    assert "victim" not in response.text  # values sent are never echoed


async def test_each_scope_allows_naming_only_its_own_field(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    _, room_only = await KeyRing(database).create(
        "room-namer", Role.TOKEN, scopes=[Scope.TOKEN_ROOM]
    )
    header = {"Authorization": f"Bearer {room_only}"}
    named = await api.post(TOKEN, json={"room": "support-desk-7"}, headers=header)
    assert named.status_code == 200 and named.json()["room"] == "support-desk-7"
    assert named.json()["identity"].startswith("user-")
    refused = await api.post(
        TOKEN, json={"room": "support-desk-7", "identity": "bob"}, headers=header
    )
    assert refused.status_code == 403 and [e["field"] for e in refused.json()["errors"]] == [
        "identity"
    ]

    admin = await mint(api, keys, {"room": "ops-room", "identity": "operator"}, role="admin")
    assert (admin["room"], admin["identity"]) == ("ops-room", "operator")


async def test_a_key_stored_before_scopes_existed_has_none(
    api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    _, token = await KeyRing(database).create("old-frontend", Role.TOKEN)
    await database[API_KEYS].update_one({"name": "old-frontend"}, {"$unset": {"scopes": ""}})
    header = {"Authorization": f"Bearer {token}"}
    assert (await api.post(TOKEN, json={}, headers=header)).status_code == 200
    assert (await api.post(TOKEN, json={"room": "r1"}, headers=header)).status_code == 403


async def test_the_participant_may_not_change_its_own_metadata(
    api: httpx.AsyncClient, keys: Keys, endpoints: Endpoints
) -> None:
    """The worker trusts these tokens' `user_id`: a participant must not be able to rewrite it."""
    minted = await mint(api, keys, {"metadata": {"user_id": "u-trusted"}})
    decoded = jwt.decode(minted["token"], options={"verify_signature": False})
    assert decoded["video"]["canUpdateOwnMetadata"] is False
    assert claims_of(endpoints, minted["token"]).video.can_update_own_metadata is False


async def test_every_minted_token_is_an_audit_event_without_metadata_values(
    endpoints: Endpoints, database_name: str, keys: Keys, database: AsyncDatabase, seeded: None
) -> None:
    secret_values = ["u-4711-private", "gold-tier-private", "berlin-private", "extra-private"]
    metadata = {
        "purpose": "sales",
        "user_id": secret_values[0],
        "user_details": {"tier": secret_values[1], "city": secret_values[2]},
        "campaign": secret_values[3],
    }
    pools = {"sales-agent-v1": "switchboard-sales"}
    async with running_app(
        admin_settings(endpoints, database_name, admin_api_agent_names=pools)
    ) as (_, api):
        minted = await mint(api, keys, {"metadata": metadata})
        plain = await mint(api, keys, {"metadata": {"agent_id": "support-agent-v1"}})
        listed = await api.get(
            "/api/v1/events", params={"type": "token.minted"}, headers=keys.header("viewer")
        )
    assert listed.status_code == 200, listed.text
    events = {e["room"]: e for e in listed.json()["items"]}
    assert set(events) == {minted["room"], plain["room"]}

    event = events[minted["room"]]
    assert event["actor"] == "test-token" and event["agent_id"] == "sales-agent-v1"
    details = event["details"]
    assert details["key_id"].startswith("key_") and details["identity"] == minted["identity"]
    assert details["agent_name"] == "switchboard-sales" and details["routed_by"] == "purpose"
    assert details["metadata_fields"] == ["purpose", "user_details", "user_id"]
    assert details["other_metadata_keys"] == 1
    assert details["room_named"] is False and details["identity_named"] is False
    assert events[plain["room"]]["agent_id"] == "support-agent-v1"

    stored = await database["events"].find({"type": "token.minted"}).to_list(length=None)
    assert len(stored) == 2
    text = json.dumps(stored, default=str)
    for value in secret_values:
        assert value not in text
    assert (
        "campaign" not in text
    )  # an extra key's name is the caller's free text: counted, not named


async def test_a_token_whose_audit_event_cannot_be_stored_is_not_handed_out(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    # A database that refuses the write: a unique index on `type` lets only the first event in.
    await database["events"].create_index("type", unique=True)
    first = await api.post(TOKEN, json={}, headers=keys.header("token"))
    assert first.status_code == 200
    second = await api.post(TOKEN, json={}, headers=keys.header("token"))
    assert second.status_code == 500 and "token" not in second.json()
    assert second.headers["content-type"] == "application/problem+json"


async def test_many_unknown_agent_ids_do_not_grow_the_resolver_caches(
    endpoints: Endpoints, database_name: str, keys: Keys, seeded: None
) -> None:
    settings = admin_settings(
        endpoints, database_name, admin_api_token_rate_per_s=10_000, admin_api_token_burst=10_000
    )
    # Explicit without an allowlist, so every unknown id reaches the availability check (and
    # the caches behind it) instead of being turned away by the strategy.
    chain = [
        {"strategy": "explicit"},
        {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
    ]
    async with running_app(settings) as (app, api):
        saved = await api.put(
            "/api/v1/routing",
            json={"chain": chain},
            headers=keys.header("admin") | {"If-Match": '"0"'},
        )
        assert saved.status_code == 200, saved.text
        for n in range(150):
            body = {"metadata": {"agent_id": f"no-such-agent-{n}"}}
            resolved = await api.post(
                "/api/v1/routing/resolve", json=body, headers=keys.header("viewer")
            )
            assert resolved.status_code == 200 and resolved.json()["agent_id"] == "support-agent-v1"
            minted = await api.post(TOKEN, json=body, headers=keys.header("token"))
            assert minted.status_code == 200, minted.text
        services = app.state.services
        # Only configs that exist are held: the four seeded types at most, whatever rooms ask for.
        assert services.resolver.configs.held <= 4
        assert services.config_reads.held <= 4


# -- the agent pin (the console's playground) ------------------------------------------------


async def test_a_pin_goes_into_the_dispatch_only_and_the_audit_event_records_it(
    api: httpx.AsyncClient, keys: Keys, endpoints: Endpoints, database: AsyncDatabase, seeded: None
) -> None:
    store = ConfigStore(database)
    sales = await store.get("sales-agent-v1")
    await store.update(
        sales.model_copy(update={"greeting": "Version two here."}), expected_version=sales.version
    )
    metadata = {"purpose": "support", "user_id": "u-pin"}
    body = {"metadata": metadata, "agent": {"agent_id": "sales-agent-v1", "version": 1}}
    minted = await mint(api, keys, body, role="token_scoped")

    claims = claims_of(endpoints, minted["token"])
    assert json.loads(claims.metadata) == metadata  # the participant never carries the pin
    dispatch = json.loads(claims.room_config.agents[0].metadata)
    assert dispatch == metadata | {"switchboard_pin": {"agent_id": "sales-agent-v1", "version": 1}}

    current = await mint(api, keys, {"agent": {"agent_id": "onboarding-agent-v1"}}, role="admin")
    assert json.loads(claims_of(endpoints, current["token"]).room_config.agents[0].metadata) == {
        "switchboard_pin": {"agent_id": "onboarding-agent-v1"}
    }

    events = {
        e["room"]: e
        for e in await database["events"].find({"type": "token.minted"}).to_list(length=None)
    }
    pinned = events[minted["room"]]
    assert pinned["agent_id"] == "sales-agent-v1" and pinned["details"]["routed_by"] == "pinned"
    assert pinned["details"]["pinned"] == {"agent_id": "sales-agent-v1", "version": 1}
    assert events[current["room"]]["details"]["pinned"] == {"agent_id": "onboarding-agent-v1"}


async def test_a_paused_type_may_be_pinned_and_an_archived_one_may_not(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase, seeded: None
) -> None:
    store = ConfigStore(database)
    await store.set_status("sales-agent-v1", AgentStatus.PAUSED)
    await mint(api, keys, {"agent": {"agent_id": "sales-agent-v1"}}, role="admin")
    await store.archive("onboarding-agent-v1")
    response = await api.post(
        TOKEN, json={"agent": {"agent_id": "onboarding-agent-v1"}}, headers=keys.header("admin")
    )
    assert response.status_code == 422, response.text
    assert [(e["field"], "archived" in e["message"]) for e in response.json()["errors"]] == [
        ("agent.agent_id", True)
    ]


async def test_a_key_without_the_agent_scope_may_not_pin(
    api: httpx.AsyncClient, keys: Keys, seeded: None
) -> None:
    body = {"agent": {"agent_id": "sales-agent-v1"}}
    response = await api.post(TOKEN, json=body, headers=keys.header("token"))
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["type"] == "urn:switchboard:problem:scope-required"
    assert [e["field"] for e in problem["errors"]] == ["agent"] and "token:agent" in problem[
        "errors"
    ][0]["message"]
    viewer = await api.post(TOKEN, json=body, headers=keys.header("viewer"))
    assert viewer.status_code == 403  # viewers mint no tokens at all


@pytest.mark.parametrize("role", ["token", "admin"])
async def test_metadata_may_not_carry_the_reserved_pin_key(
    api: httpx.AsyncClient, keys: Keys, role: str, seeded: None
) -> None:
    smuggled = {
        "metadata": {"purpose": "support", "switchboard_pin": {"agent_id": "sales-agent-v1"}}
    }
    response = await api.post(TOKEN, json=smuggled, headers=keys.header(role))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["metadata.switchboard_pin"]


@pytest.mark.parametrize(
    ("agent", "field", "words"),
    [
        ({"agent_id": "no-such-agent"}, "agent.agent_id", "no agent type"),
        ({"agent_id": "sales-agent-v1", "version": 9}, "agent.version", "no version 9"),
        (
            {"agent_id": "sales-agent-v1", "version": 0},
            "agent.version",
            "greater than or equal to 1",
        ),
        ({"agent_id": "Sales Agent"}, "agent.agent_id", ""),
        ({"agent_id": "sales-agent-v1", "extra": 1}, "agent.extra", ""),
    ],
)
async def test_a_pin_of_a_missing_type_or_version_is_422_naming_the_field(
    api: httpx.AsyncClient, keys: Keys, agent: dict[str, Any], field: str, words: str, seeded: None
) -> None:
    response = await api.post(TOKEN, json={"agent": agent}, headers=keys.header("token_scoped"))
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field] and words in errors[0]["message"]
