"""POST /widget/token: the website widget's publishable key mints a room token only from the
origins its binding lists, only for the targets it names, never with a user_id; its CORS
preflight; the per-address rate limit; GET /widget.js."""

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
from livekit import api as livekit_api
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import (
    CHANNEL_BINDINGS,
    CHANNEL_KEY,
    ChannelBinding,
    ChannelKind,
    WidgetSettings,
)
from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app

WIDGET_TOKEN = "/api/v1/widget/token"
SHOP = "https://shop.example"
KEY = "pk_" + "a" * 32
KEY_HEADER = "Switchboard-Publishable-Key"


async def add_binding(
    database: AsyncDatabase,
    binding_id: str = "shop-chat",
    key: str = KEY,
    enabled: bool = True,
    **widget: Any,
) -> ChannelBinding:
    binding = ChannelBinding(
        binding_id=binding_id,
        kind=ChannelKind.WIDGET,
        purpose="support",
        enabled=enabled,
        widget=WidgetSettings(
            **({"origins": [SHOP]} | widget | {"publishable_key": key}),
        ),
    )
    await database[CHANNEL_BINDINGS].insert_one(binding.document())
    return binding


def from_page(origin: str | None = SHOP, key: str | None = KEY) -> dict[str, str]:
    return ({"Origin": origin} if origin else {}) | ({KEY_HEADER: key} if key else {})


def claims_of(endpoints: Endpoints, token: str) -> livekit_api.access_token.Claims:
    verifier = livekit_api.TokenVerifier(endpoints.livekit_api_key, endpoints.livekit_api_secret)
    return verifier.verify(token)


async def minted_events(database: AsyncDatabase) -> list[dict[str, Any]]:
    return await database["events"].find({"type": "token.minted"}).to_list(length=None)


async def test_a_listed_origin_gets_a_token_whose_dispatch_carries_the_channel_mark_and_no_user_id(
    api: httpx.AsyncClient, database: AsyncDatabase, endpoints: Endpoints, seeded: None
) -> None:
    await add_binding(database)
    answered = await api.post(WIDGET_TOKEN, json={}, headers=from_page())
    assert answered.status_code == 200, answered.text
    assert answered.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in answered.headers["vary"]
    minted = answered.json()
    room = minted["room"]
    assert room.startswith("room-") and minted["identity"].startswith("user-")

    claims = claims_of(endpoints, minted["token"])
    (dispatch,) = claims.room_config.agents
    assert dispatch.agent_name == minted["agent_name"] == "switchboard"
    mark = {"kind": "widget", "binding_id": "shop-chat", "conversation_id": room}
    assert json.loads(dispatch.metadata) == {
        "purpose": "support",
        "modality": "text",
        CHANNEL_KEY: mark,
    }
    # The participant's own metadata: routing only; the mark is the server's, like a pin.
    assert json.loads(claims.metadata) == {"purpose": "support", "modality": "text"}
    assert claims.video.room == room and claims.video.room_join
    decoded = jwt.decode(minted["token"], options={"verify_signature": False})
    assert decoded["video"]["canUpdateOwnMetadata"] is False

    (event,) = await minted_events(database)
    assert event["actor"] == "widget:shop-chat" and event["room"] == room
    assert event["agent_id"] == "support-agent-v1"
    details = event["details"]
    assert details["binding_id"] == "shop-chat" and details["origin"] == SHOP
    assert details["identity"] == minted["identity"] and details["routed_by"] == "purpose"
    assert "key_id" not in details

    voice = await api.post(WIDGET_TOKEN, json={"modality": "voice"}, headers=from_page())
    assert voice.status_code == 200, voice.text
    (dispatch,) = claims_of(endpoints, voice.json()["token"]).room_config.agents
    assert "modality" not in json.loads(dispatch.metadata)
    assert "user_id" not in json.loads(dispatch.metadata)


async def test_an_unlisted_or_missing_origin_is_403_naming_origin_and_mints_nothing(
    api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    await add_binding(database)
    for origin in ("https://elsewhere.example", "https://shop.example:8443", None):
        refused = await api.post(WIDGET_TOKEN, json={}, headers=from_page(origin))
        assert refused.status_code == 403, (origin, refused.text)
        problem = refused.json()
        assert problem["type"] == "urn:switchboard:problem:origin-refused"
        assert [(e["field"], e["location"]) for e in problem["errors"]] == [("Origin", "header")]
        assert "access-control-allow-origin" not in refused.headers
    assert await minted_events(database) == []


async def test_a_target_the_binding_does_not_list_is_403_naming_the_field(
    api: httpx.AsyncClient, database: AsyncDatabase, endpoints: Endpoints, seeded: None
) -> None:
    await add_binding(database, purposes=["billing"], agent_ids=["sales-agent-v1"])
    for body, field in (
        ({"purpose": "sales"}, "purpose"),
        ({"agent_id": "onboarding"}, "agent_id"),
    ):
        refused = await api.post(WIDGET_TOKEN, json=body, headers=from_page())
        assert refused.status_code == 403, refused.text
        problem = refused.json()
        assert problem["type"] == "urn:switchboard:problem:widget-target-refused"
        assert [e["field"] for e in problem["errors"]] == [field]
        # a page of a listed origin reads why it was refused
        assert refused.headers["access-control-allow-origin"] == SHOP

    for body in ({"purpose": "support"}, {"purpose": "billing"}, {"agent_id": "sales-agent-v1"}):
        allowed = await api.post(WIDGET_TOKEN, json=body, headers=from_page())
        assert allowed.status_code == 200, (body, allowed.text)
        (dispatch,) = claims_of(endpoints, allowed.json()["token"]).room_config.agents
        assert json.loads(dispatch.metadata).items() >= body.items()

    both = await api.post(
        WIDGET_TOKEN, json={"purpose": "support", "agent_id": "x"}, headers=from_page()
    )
    user_id = await api.post(WIDGET_TOKEN, json={"user_id": "u-1"}, headers=from_page())
    for invalid in (both, user_id):
        assert invalid.status_code == 422, invalid.text
        assert invalid.headers["access-control-allow-origin"] == SHOP


async def test_a_disabled_binding_and_an_unknown_key_get_the_same_refusal(
    api: httpx.AsyncClient, database: AsyncDatabase, keys: Keys
) -> None:
    await add_binding(database, enabled=False)
    disabled = await api.post(WIDGET_TOKEN, json={}, headers=from_page())
    unknown = await api.post(WIDGET_TOKEN, json={}, headers=from_page(key="pk_" + "b" * 32))
    assert disabled.status_code == unknown.status_code == 403
    assert disabled.json() == unknown.json()
    assert unknown.json()["type"] == "urn:switchboard:problem:widget-key-refused"
    # An API key is not a publishable key, and the header is required.
    api_key = await api.post(WIDGET_TOKEN, json={}, headers=from_page(key=keys.admin))
    assert api_key.json() == unknown.json()
    missing = await api.post(WIDGET_TOKEN, json={}, headers=from_page(key=None))
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == [KEY_HEADER]
    assert await minted_events(database) == []


async def test_the_preflight_allows_only_an_origin_a_widget_binding_lists(
    api: httpx.AsyncClient, database: AsyncDatabase
) -> None:
    await add_binding(database)
    asking = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": f"content-type,{KEY_HEADER.lower()}",
    }
    allowed = await api.options(WIDGET_TOKEN, headers=asking | {"Origin": SHOP})
    assert allowed.status_code == 204, allowed.text
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert allowed.headers["access-control-allow-methods"] == "POST"
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers and KEY_HEADER.lower() in allowed_headers
    assert allowed.headers["vary"] == "Origin"

    refused = await api.options(WIDGET_TOKEN, headers=asking | {"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers

    # Not a preflight: the API's usual OPTIONS answer.
    plain = await api.options(WIDGET_TOKEN)
    assert plain.status_code == 204 and plain.headers["allow"] == "POST, OPTIONS"


async def test_widget_tokens_are_rate_limited_per_client_address(
    endpoints: Endpoints, database_name: str, database: AsyncDatabase
) -> None:
    await add_binding(database)
    settings = admin_settings(
        endpoints, database_name, admin_api_token_rate_per_s=0.2, admin_api_token_burst=2
    )
    async with running_app(settings) as (app, api):
        codes = [
            (await api.post(WIDGET_TOKEN, json={}, headers=from_page())).status_code
            for _ in range(3)
        ]
        limited = await api.post(WIDGET_TOKEN, json={}, headers=from_page())
        elsewhere = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 4000)),
            base_url="http://admin.test",
        )
        async with elsewhere:
            other_address = await elsewhere.post(WIDGET_TOKEN, json={}, headers=from_page())
    assert codes == [200, 200, 429]
    assert limited.json()["type"] == "urn:switchboard:problem:rate-limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 5
    assert other_address.status_code == 200, other_address.text


async def test_widget_js_is_served_to_any_page_with_cache_headers(
    endpoints: Endpoints, database_name: str, database: AsyncDatabase, tmp_path: Path
) -> None:
    settings = admin_settings(endpoints, database_name, admin_api_console_dir=tmp_path)
    async with running_app(settings) as (_, api):
        missing = await api.get("/widget.js")
        (tmp_path / "widget.js").write_text("(() => {})();\n")
        served = await api.get("/widget.js", headers={"Origin": SHOP})
        again = await api.get("/widget.js", headers={"If-None-Match": served.headers["etag"]})
    assert missing.status_code == 503
    assert served.status_code == 200 and served.text == "(() => {})();\n"
    assert served.headers["content-type"].startswith("text/javascript")
    assert served.headers["access-control-allow-origin"] == "*"
    assert served.headers["cache-control"] == "public, max-age=300"
    assert again.status_code == 304
