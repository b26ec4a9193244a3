"""POST /token: what the JWT carries, validation and size limits, pools, rate limit, a real join."""

import json
from typing import Any

import httpx
import jwt
import pytest
from livekit import api as livekit_api
from livekit import rtc
from livekit.api.access_token import Claims

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
    metadata = {"purpose": "support", "user_id": "u-1", "user_details": {"tier": "premium"}, "locale": "de"}
    minted = await mint(
        api, keys, {"room": "room-a1", "identity": "alice", "name": "Alice", "metadata": metadata}
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
            "/api/v1/routing/resolve", json={"metadata": {"purpose": "sales"}}, headers=keys.header("viewer")
        )
    assert sales["agent_name"] == "switchboard-sales" == resolved.json()["agent_name"]
    assert claims_of(endpoints, sales["token"]).room_config.agents[0].agent_name == "switchboard-sales"
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
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"

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
        codes = [(await api.post(TOKEN, json={}, headers=keys.header("token"))).status_code for _ in range(3)]
        limited = await api.post(TOKEN, json={}, headers=keys.header("token"))
        other_key = await api.post(TOKEN, json={}, headers=keys.header("admin"))
    assert codes == [200, 200, 429]
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 5
    assert limited.json()["type"] == "urn:switchboard:problem:rate-limited"
    assert other_key.status_code == 200


async def test_a_real_client_joins_with_the_token(api: httpx.AsyncClient, keys: Keys) -> None:
    metadata = {"purpose": "support", "user_id": "u-join"}
    minted = await mint(api, keys, {"identity": "joiner", "metadata": metadata})
    room = rtc.Room()
    try:
        await room.connect(minted["server_url"], minted["token"])
        assert room.isconnected() and room.name == minted["room"]
        assert room.local_participant.identity == "joiner"
        assert json.loads(room.local_participant.metadata) == metadata
    finally:
        await room.disconnect()
