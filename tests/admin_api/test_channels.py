"""Channel bindings through the admin API, on the real FerretDB: CRUD with versions and the
audit trail, refusals as 422s naming the field (the model's cross-field checks and the egress
policy), the widget's generated publishable key, a binding's traffic from `channel_messages`,
and the sessions a channel brought in (`channel` on the records, `?channel=` on the list)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.settings import AdminSettings
from agent_configs.channels import (
    CHANNEL_BINDINGS,
    CHANNEL_MESSAGES,
    CHANNEL_STATUS,
    binding_by_publishable_key,
    get_binding,
)
from agent_configs.database import bson_now
from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings

CHANNELS = "/api/v1/channels"
TOKEN_ENV = "SHOP_TELEGRAM_TOKEN"
AMQP_ENV = "ORDERS_AMQP_URL"


@pytest.fixture
def settings(
    endpoints: Endpoints, database_name: str, monkeypatch: pytest.MonkeyPatch
) -> AdminSettings:
    monkeypatch.setenv(
        "EGRESS_SECRETS",
        json.dumps({TOKEN_ENV: ["api.telegram.org", "loopback"], AMQP_ENV: ["loopback"]}),
    )
    return admin_settings(endpoints, database_name)


def telegram(binding_id: str = "shop-bot", **settings: Any) -> dict[str, Any]:
    return {
        "binding_id": binding_id,
        "kind": "telegram",
        "agent_id": "support-agent-v1",
        "telegram": {"token_env": TOKEN_ENV, **settings},
    }


def widget(binding_id: str = "shop-widget", **settings: Any) -> dict[str, Any]:
    return {
        "binding_id": binding_id,
        "kind": "widget",
        "purpose": "sales",
        "widget": {"origins": ["https://shop.example"], **settings},
    }


def admin(keys: Keys, version: int | None = None) -> dict[str, str]:
    headers = keys.header("admin")
    return headers | {"If-Match": f'"{version}"'} if version is not None else headers


async def test_an_admin_creates_reads_replaces_and_deletes_a_binding_and_each_change_is_audited(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await api.post(CHANNELS, json=telegram(), headers=admin(keys))
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"].endswith(f"{CHANNELS}/shop-bot")
    body = created.json()
    assert body["version"] == 1 and body["enabled"] is True and body["created_at"]
    assert body["telegram"] == {
        "token_env": TOKEN_ENV,
        "api_base_url": "https://api.telegram.org",
        "mode": "polling",
        "webhook_secret_env": None,
    }
    stored = await get_binding(database, "shop-bot")
    assert stored is not None and stored.agent_id == "support-agent-v1"

    viewer = keys.header("viewer")
    listed = await api.get(CHANNELS, headers=viewer)
    assert [b["binding_id"] for b in listed.json()["items"]] == ["shop-bot"]
    read = await api.get(f"{CHANNELS}/shop-bot", headers=viewer)
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    for method, path, sent in (
        ("POST", CHANNELS, telegram("other-bot")),
        ("PUT", f"{CHANNELS}/shop-bot", telegram()),
        ("DELETE", f"{CHANNELS}/shop-bot", None),
    ):
        refused = await api.request(method, path, json=sent, headers=viewer)
        assert refused.status_code == 403, (method, refused.text)

    taken = await api.post(CHANNELS, json=telegram(), headers=admin(keys))
    assert taken.status_code == 409, taken.text
    disabled = await api.put(
        f"{CHANNELS}/shop-bot", json={**body, "enabled": False}, headers=admin(keys, 1)
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False and disabled.json()["version"] == 2
    assert disabled.json()["created_at"] == body["created_at"]
    stale = await api.put(f"{CHANNELS}/shop-bot", json=body, headers=admin(keys, 1))
    assert stale.status_code == 412 and stale.json()["current_version"] == 2
    unknown = await api.put(f"{CHANNELS}/no-such", json=telegram("no-such"), headers=admin(keys))
    assert unknown.status_code == 404, unknown.text

    assert (await api.delete(f"{CHANNELS}/shop-bot", headers=admin(keys))).status_code == 204
    assert (await api.get(f"{CHANNELS}/shop-bot", headers=viewer)).status_code == 404
    assert (await api.delete(f"{CHANNELS}/shop-bot", headers=admin(keys))).status_code == 404
    # The id can be used again, and the new binding's versions start over.
    again = await api.post(CHANNELS, json=telegram(), headers=admin(keys))
    assert again.status_code == 201 and again.json()["version"] == 1
    changed = await api.put(f"{CHANNELS}/shop-bot", json=telegram(), headers=admin(keys, 1))
    assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text

    events = (await api.get("/api/v1/events", headers=viewer)).json()["items"]
    audited = [
        (e["type"], e["details"].get("binding_id")) for e in events if "channel" in e["type"]
    ]
    assert [t for t, _ in reversed(audited)] == [
        "channel.created",
        "channel.updated",
        "channel.deleted",
        "channel.created",
        "channel.updated",
    ]
    assert {b for _, b in audited} == {"shop-bot"}
    update = next(e for e in events if e["type"] == "channel.updated" and e["version"] == 2)
    assert update["actor"] == "test-admin"


async def test_a_widget_gets_a_generated_publishable_key_that_no_write_sets(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await api.post(
        CHANNELS, json=widget(publishable_key="pk_chosen-by-caller"), headers=admin(keys)
    )
    assert created.status_code == 201, created.text
    key = created.json()["widget"]["publishable_key"]
    assert key.startswith("pk_") and len(key) == 35 and key != "pk_chosen-by-caller"
    found = await binding_by_publishable_key(database, key)
    assert found is not None and found.binding_id == "shop-widget"

    replaced = await api.put(
        f"{CHANNELS}/shop-widget",
        json=widget(publishable_key="pk_other", origins=["http://127.0.0.1:8080"]),
        headers=admin(keys),
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["widget"]["publishable_key"] == key
    assert replaced.json()["widget"]["origins"] == ["http://127.0.0.1:8080"]
    another = await api.post(CHANNELS, json=widget("second-widget"), headers=admin(keys))
    assert another.json()["widget"]["publishable_key"] not in (key, None)


# (body, the field the 422 names, words of its message)
REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    (telegram(token_env="LIVEKIT_API_SECRET"), "telegram.token_env", "never sent"),
    (telegram(token_env="SOME_OTHER_TOKEN"), "telegram.token_env", "EGRESS_SECRETS"),
    (
        telegram(api_base_url="https://bots.attacker.example"),
        "telegram.api_base_url",
        "may only be sent to",
    ),
    (telegram() | {"purpose": "sales"}, "agent_id", "exactly one"),
    (telegram(mode="webhook"), "telegram.webhook_secret_env", "required in webhook mode"),
    (
        telegram(mode="webhook", webhook_secret_env="MONGO_URI"),
        "telegram.webhook_secret_env",
        "never sent",
    ),
    (
        {
            "binding_id": "orders",
            "kind": "amqp",
            "agent_id": "support-agent-v1",
            "amqp": {"url_env": "MONGO_URI", "queue": "orders"},
        },
        "amqp.url_env",
        "never sent",
    ),
    (widget(origins=["https://shop.example/page"]), "widget.origins.0", "not an origin"),
    ({**telegram(), "kind": "widget"}, "telegram", "only for a telegram binding"),
    (telegram() | {"user_details": {"$where": "1"}}, "user_details.$where", "may not"),
    (telegram() | {"colour": "blue"}, "colour", "Extra inputs"),
]


async def test_a_refused_binding_is_a_422_naming_its_field_and_nothing_is_written(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    for sent, field, words in REFUSALS:
        refused = await api.post(CHANNELS, json=sent, headers=admin(keys))
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        [problem] = refused.json()["errors"]
        assert problem["field"] == field and words in problem["message"], (field, problem)
    assert await database[CHANNEL_BINDINGS].count_documents({}) == 0

    await api.post(CHANNELS, json=telegram(), headers=admin(keys))
    renamed = await api.put(f"{CHANNELS}/shop-bot", json=telegram("renamed"), headers=admin(keys))
    assert renamed.status_code == 422, renamed.text
    assert [p["field"] for p in renamed.json()["errors"]] == ["binding_id"]
    widened = await api.put(
        f"{CHANNELS}/shop-bot", json=telegram(token_env="ADMIN_API_KEY"), headers=admin(keys)
    )
    assert [p["field"] for p in widened.json()["errors"]] == ["telegram.token_env"]
    assert (await api.get(f"{CHANNELS}/shop-bot", headers=admin(keys))).json()["version"] == 1


def message(number: int, status: str, age: timedelta, binding_id: str = "shop-bot") -> dict:
    error = None if status == "processed" else {"code": "rate_limited", "message": "slow down"}
    return {
        "_id": f"msg-{binding_id}-{number}",
        "binding_id": binding_id,
        "kind": "telegram",
        "conversation_id": "chat-1",
        "user_id": "telegram:shop-bot:42",
        "message_id": str(number),
        "status": status,
        "error": error,
        "session_id": "sess-a" if status == "processed" else None,
        "at": bson_now() - age,
        "reply_ms": 420.0 if status == "processed" else None,
    }


def session(session_id: str, age: timedelta, channel: dict[str, str] | None) -> dict[str, Any]:
    document = {
        "_id": session_id,
        "session_id": session_id,
        "room": f"room-{session_id}",
        "agent_id": "support-agent-v1",
        "user_id": "telegram:shop-bot:42",
        "status": "ended",
        "started_at": bson_now() - age,
    }
    return document | ({"channel": channel} if channel else {})


async def test_traffic_counts_the_last_day_and_sessions_show_and_filter_by_their_channel(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    await api.post(CHANNELS, json=telegram(), headers=admin(keys))
    minute, days = timedelta(minutes=1), timedelta(days=2)
    await database[CHANNEL_MESSAGES].insert_many(
        [
            message(1, "processed", 5 * minute),
            message(2, "failed", 4 * minute),
            message(3, "refused", 3 * minute),
            message(4, "processed", 2 * minute),
            message(5, "processed", days),  # counted in recent, not in the day's counts
            message(6, "processed", minute, binding_id="other-bot"),
        ]
    )
    mark = {"kind": "telegram", "binding_id": "shop-bot", "conversation_id": "chat-1"}
    other = {"kind": "http", "binding_id": "other-bot", "conversation_id": "c"}
    await database["sessions"].insert_many(
        [
            session("sess-a", 5 * minute, mark),
            session("sess-b", days, mark),
            session("sess-c", minute, other),
            session("sess-d", minute, None),
        ]
    )
    viewer = keys.header("viewer")
    traffic = await api.get(f"{CHANNELS}/shop-bot/traffic", headers=viewer)
    assert traffic.status_code == 200, traffic.text
    body = traffic.json()
    assert body["counts"] == {"processed": 2, "failed": 1, "refused": 1}
    assert body["sessions_24h"] == 1
    assert [m["message_id"] for m in body["recent"]] == ["4", "3", "2", "1", "5"]
    assert body["recent"][2]["error"] == {"code": "rate_limited", "message": "slow down"}
    assert "text" not in body["recent"][0]
    assert body["runner"] is None, "no channels service has looked at it yet"
    await database[CHANNEL_STATUS].insert_one(
        {"_id": "shop-bot", "state": "error", "error": "telegram.token_env: BOT is unset"}
        | {"at": datetime.now(UTC)}
    )
    runner = (await api.get(f"{CHANNELS}/shop-bot/traffic", headers=viewer)).json()["runner"]
    assert runner["state"] == "error" and "token_env" in runner["error"]
    missing = await api.get(f"{CHANNELS}/no-such/traffic", headers=viewer)
    assert missing.status_code == 404

    listed = await api.get("/api/v1/sessions", params={"channel": "shop-bot"}, headers=viewer)
    assert [s["session_id"] for s in listed.json()["items"]] == ["sess-a", "sess-b"]
    assert listed.json()["items"][0]["channel"] == mark
    everyone = (await api.get("/api/v1/sessions", headers=viewer)).json()["items"]
    assert {s["session_id"]: s["channel"] for s in everyone}["sess-d"] is None
    detail = await api.get("/api/v1/sessions/sess-c", headers=viewer)
    assert detail.json()["channel"] == other
