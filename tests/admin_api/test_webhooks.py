"""Webhook subscriptions through the admin API on the real FerretDB: secrets generated, shown once
and stored only as ciphertext; env-named secrets and URLs held to the egress policy; rotation
with a grace period; the test event in the outbox; deliveries listed and redelivered."""

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.settings import AdminSettings
from agent_configs import webhook_secrets
from agent_configs.cloudevents import DELIVERIES, OUTBOX, SUBSCRIPTIONS, EventType
from agent_configs.egress import EgressPolicy, EgressRefused
from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app

HOOKS = "/api/v1/webhooks"
RECEIVER = "http://127.0.0.1:9/hooks"  # loopback: allowed by the default policy, never called here
SIGNING_ENV = "RECEIVER_SIGNING_SECRET"
POLICY_ENV = {
    "EGRESS_SECRETS": json.dumps(
        {SIGNING_ENV: ["hooks.example.com", "loopback"], "OPENAI_API_KEY": ["api.openai.com"]}
    ),
    "EGRESS_HOSTS": json.dumps(["loopback", "hooks.example.com"]),
}


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def settings(
    endpoints: Endpoints,
    database_name: str,
    tmp_path: Path,
    encryption_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AdminSettings:
    for name, value in POLICY_ENV.items():
        monkeypatch.setenv(name, value)
    return admin_settings(
        endpoints,
        database_name,
        webhook_encryption_key=encryption_key,
        admin_api_spool_dir=tmp_path / "spool",
    )


def admin(keys: Keys, version: int | None = None) -> dict[str, str]:
    headers = keys.header("admin")
    return headers | {"If-Match": f'"{version}"'} if version is not None else headers


async def create(api: httpx.AsyncClient, keys: Keys, **body: Any) -> dict[str, Any]:
    created = await api.post(HOOKS, json={"url": RECEIVER, **body}, headers=admin(keys))
    assert created.status_code == 201, created.text
    return created.json()


async def stored(database: AsyncDatabase, subscription_id: str) -> dict[str, Any]:
    document = await database[SUBSCRIPTIONS].find_one({"_id": subscription_id})
    assert document is not None
    return document


async def outbox_event(
    database: AsyncDatabase, event_id: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """The event once the API's outbox writer (off the request) has written it."""
    deadline = time.monotonic() + timeout_s
    while (document := await database[OUTBOX].find_one({"_id": event_id})) is None:
        assert time.monotonic() < deadline, f"{event_id} never reached the outbox"
        await asyncio.sleep(0.05)
    return document


def a_delivery(subscription_id: str, n: int, status: str, **fields: Any) -> dict[str, Any]:
    """A delivery as the dispatcher leaves it (contract: webhook_deliveries)."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10 - n)
    return {
        "_id": f"evt_{n:032x}|{subscription_id}",
        "event_id": f"evt_{n:032x}",
        "subscription_id": subscription_id,
        "event_type": "session.ended",
        "ordering_key": "sess_x",
        "seq": n,
        "status": status,
        "attempts": 15,
        "next_attempt_at": at,
        "lease_owner": None,
        "lease_until": None,
        "last_error": "HTTP 503",
        "last_status": 503,
        "last_response_ms": 41,
        "delivered_at": None,
        "created_at": at,
        "retrying_since": at,
        **fields,
    }


# -- secrets ---------------------------------------------------------------------------------


async def test_a_generated_secret_is_shown_once_and_stored_only_as_ciphertext(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase, encryption_key: str
) -> None:
    created = await create(
        api, keys, description="CRM", event_types=["session.ended", "agent.paused"]
    )
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(webhook_secrets.SECRET_PREFIX) + 44 == len(secret)
    assert created["signing_secret"] == {
        "kind": "generated",
        "prefix": secret[:10],
        "env": None,
        "valid_until": None,
    }
    assert created["event_types"] == ["session.ended", "agent.paused"] and created["version"] == 1

    document = await stored(database, created["id"])
    body = secret.removeprefix("whsec_")
    assert (
        secret not in repr(document)
        and body not in repr(document)
        and body[:20] not in repr(document)
    )
    assert set(document["secret"]) == {"kind", "ciphertext", "prefix"}
    assert webhook_secrets.decrypt(document["secret"]["ciphertext"], key=encryption_key) == secret
    assert webhook_secrets.signing_secrets(document, datetime.now(UTC), key=encryption_key) == [
        secret
    ]
    with pytest.raises(webhook_secrets.SecretUnavailable, match="does not decrypt"):
        webhook_secrets.decrypt(
            document["secret"]["ciphertext"], key=Fernet.generate_key().decode()
        )

    fetched = await api.get(f"{HOOKS}/{created['id']}", headers=keys.header("viewer"))
    listed = await api.get(HOOKS, headers=keys.header("viewer"))
    assert fetched.status_code == listed.status_code == 200
    assert fetched.headers["etag"] == '"1"' and "secret" not in fetched.json()
    for answer in (fetched, listed):
        assert body not in answer.text and document["secret"]["ciphertext"] not in answer.text
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]


async def test_no_secret_ever_reaches_the_logs(
    api: httpx.AsyncClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await create(api, keys)
    rotated = await api.post(f"{HOOKS}/{created['id']}/rotate-secret", json={}, headers=admin(keys))
    await api.get(f"{HOOKS}/{created['id']}", headers=admin(keys))
    assert rotated.status_code == 200
    logged = caplog.text + repr([record.args for record in caplog.records])
    assert f"webhook subscription {created['id']}" in logged  # the writes are logged...
    for secret in (created["secret"], rotated.json()["secret"]):  # ...never their secrets
        assert secret.removeprefix("whsec_")[:16] not in logged


async def test_rotation_keeps_the_previous_secret_valid_until_the_grace_ends(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase, encryption_key: str
) -> None:
    created = await create(api, keys)
    rotated = await api.post(
        f"{HOOKS}/{created['id']}/rotate-secret", json={"grace_s": 3600}, headers=admin(keys)
    )
    assert rotated.status_code == 200, rotated.text
    answer = rotated.json()
    assert answer["secret"].startswith("whsec_") and answer["secret"] != created["secret"]
    assert answer["version"] == 2 and rotated.headers["etag"] == '"2"'
    assert answer["previous_signing_secret"]["prefix"] == created["signing_secret"]["prefix"]

    document = await stored(database, created["id"])
    now = datetime.now(UTC)
    valid_until = document["previous_secret"]["valid_until"]
    assert timedelta(seconds=3590) < valid_until - now <= timedelta(seconds=3600)
    both = webhook_secrets.signing_secrets(document, now, key=encryption_key)
    assert both == [answer["secret"], created["secret"]]
    after = webhook_secrets.signing_secrets(
        document, valid_until + timedelta(seconds=1), key=encryption_key
    )
    assert after == [answer["secret"]]

    again = await api.post(
        f"{HOOKS}/{created['id']}/rotate-secret", json={"grace_s": 0}, headers=admin(keys)
    )
    assert again.json()["previous_signing_secret"] is None
    assert (await stored(database, created["id"]))["previous_secret"] is None


async def test_of_two_rotations_at_once_no_200_answers_a_secret_that_does_not_sign(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase, encryption_key: str
) -> None:
    created = await create(api, keys)
    path = f"{HOOKS}/{created['id']}/rotate-secret"
    conflicts = 0
    for _ in range(20):
        # No grace: a secret a 200 answered but a later write replaced would be refused at once.
        answers = await asyncio.gather(
            *(api.post(path, json={"grace_s": 0}, headers=admin(keys)) for _ in range(2))
        )
        assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
        won = sorted(
            (a.json() for a in answers if a.status_code == 200), key=lambda a: a["version"]
        )
        assert won, "one of them is saved"
        assert len({a["version"] for a in won}) == len(won), "two 200s never share a version"
        document = await stored(database, created["id"])
        assert document["version"] == won[-1]["version"]
        signing = webhook_secrets.signing_secrets(document, datetime.now(UTC), key=encryption_key)
        assert signing == [won[-1]["secret"]], "the last 200's secret is the one that signs"
        for refused in (a for a in answers if a.status_code == 409):
            conflicts += 1
            problem = refused.json()
            assert refused.headers["content-type"] == "application/problem+json"
            assert problem["status"] == 409 and created["id"] in problem["detail"]
    assert conflicts, "some pairs did race (else this test proves nothing)"


async def test_without_the_encryption_key_a_secret_is_not_generated_and_nothing_is_written(
    endpoints: Endpoints, database_name: str, database: AsyncDatabase, keys: Keys
) -> None:
    settings = admin_settings(endpoints, database_name, webhook_encryption_key=None)
    async with running_app(settings) as (_, api):
        refused = await api.post(HOOKS, json={"url": RECEIVER}, headers=admin(keys))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert "WEBHOOK_ENCRYPTION_KEY" in refused.json()["detail"]
        assert await database[SUBSCRIPTIONS].count_documents({}) == 0


async def test_an_env_named_secret_must_be_one_the_egress_policy_lets_go_to_the_urls_host(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await create(api, keys, url="https://hooks.example.com/in", secret_env=SIGNING_ENV)
    assert created["secret"] is None
    assert created["signing_secret"] == {
        "kind": "env",
        "prefix": None,
        "env": SIGNING_ENV,
        "valid_until": None,
    }
    document = await stored(database, created["id"])
    policy = EgressPolicy(secrets={SIGNING_ENV: ["hooks.example.com"]}, hosts=[])
    signing = webhook_secrets.generate()
    assert webhook_secrets.signing_secrets(
        document, datetime.now(UTC), policy=policy, environ={SIGNING_ENV: signing}
    ) == [signing]
    narrowed = EgressPolicy(secrets={SIGNING_ENV: ["other.example.com"]})
    with pytest.raises(EgressRefused):  # the operator since narrowed the policy: not signed
        webhook_secrets.signing_secrets(
            document, datetime.now(UTC), policy=narrowed, environ={SIGNING_ENV: signing}
        )

    for name, message in (
        ("OPENAI_API_KEY", "may only be sent to api.openai.com"),
        ("LIVEKIT_API_SECRET", "never sent anywhere"),
        ("SOMETHING_ELSE", "EGRESS_SECRETS"),
    ):
        refused = await api.post(
            HOOKS, json={"url": RECEIVER, "secret_env": name}, headers=admin(keys)
        )
        assert refused.status_code == 422, refused.text
        [problem] = refused.json()["errors"]
        assert problem["field"] == "secret_env" and message in problem["message"]
    assert await database[SUBSCRIPTIONS].count_documents({}) == 1


# -- what is refused -------------------------------------------------------------------------


async def test_a_url_the_egress_policy_refuses_is_a_422_naming_url_and_nothing_is_written(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    for url in ("https://attacker.example.net/hook", "ftp://127.0.0.1/x", "http://10.0.0.8/hook"):
        refused = await api.post(HOOKS, json={"url": url}, headers=admin(keys))
        assert refused.status_code == 422, (url, refused.text)
        assert [p["field"] for p in refused.json()["errors"]] == ["url"]
    assert await database[SUBSCRIPTIONS].count_documents({}) == 0


async def test_an_unknown_event_type_is_a_422_at_its_index_and_nothing_is_written(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    refused = await api.post(
        HOOKS,
        json={"url": RECEIVER, "event_types": ["session.ended", "order.shipped"]},
        headers=admin(keys),
    )
    assert refused.status_code == 422
    [problem] = refused.json()["errors"]
    assert problem["field"] == "event_types.1" and "turn.completed" in problem["message"]
    unknown_field = await api.post(
        HOOKS, json={"url": RECEIVER, "secret": "whsec_mine"}, headers=admin(keys)
    )
    assert (
        unknown_field.status_code == 422 and unknown_field.json()["errors"][0]["field"] == "secret"
    )
    assert "whsec_mine" not in unknown_field.text
    assert await database[SUBSCRIPTIONS].count_documents({}) == 0


async def test_a_viewer_sees_subscriptions_but_every_write_is_refused(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await create(api, keys)
    viewer = keys.header("viewer") | {"If-Match": '"1"'}
    path = f"{HOOKS}/{created['id']}"
    assert (await api.get(path, headers=viewer)).status_code == 200
    assert (await api.get(f"{path}/deliveries", headers=viewer)).status_code == 200
    for method, url, body in (
        ("POST", HOOKS, {"url": RECEIVER}),
        ("PATCH", path, {"status": "paused"}),
        ("DELETE", path, None),
        ("POST", f"{path}/rotate-secret", {}),
        ("POST", f"{path}/test", None),
        ("POST", f"{path}/redeliver-failed", None),
    ):
        refused = await api.request(method, url, json=body, headers=viewer)
        assert refused.status_code == 403, (method, url, refused.text)
        assert refused.json()["type"] == "urn:switchboard:problem:forbidden"
    assert await database[SUBSCRIPTIONS].count_documents({}) == 1
    assert (await stored(database, created["id"]))["version"] == 1
    assert await database[OUTBOX].count_documents({}) == 0


async def test_a_viewer_reads_where_a_subscription_sends_but_not_its_path_an_admin_reads_it_all(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    """A receiver's path is often a capability (`/hooks/<tenant-token>`); the audit shows the
    host only, and so does every read a viewer makes."""
    url = "http://127.0.0.1:9/hooks/tenant-7f3a"
    created = await create(api, keys, url=url)
    path = f"{HOOKS}/{created['id']}"
    viewer = keys.header("viewer")
    one = (await api.get(path, headers=viewer)).json()
    listed = (await api.get(HOOKS, headers=viewer)).json()["items"]
    assert one["url"] == listed[0]["url"] == "http://127.0.0.1:9"
    assert "tenant-7f3a" not in json.dumps([one, listed])
    assert (await api.get(path, headers=admin(keys))).json()["url"] == url
    assert (await api.get(HOOKS, headers=admin(keys))).json()["items"][0]["url"] == url


# -- changes ---------------------------------------------------------------------------------


async def test_patch_needs_if_match_changes_filters_and_status_and_refuses_what_it_does_not_own(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await create(api, keys)
    path = f"{HOOKS}/{created['id']}"
    assert (
        await api.patch(path, json={"status": "paused"}, headers=admin(keys))
    ).status_code == 428

    paused = await api.patch(
        path,
        json={
            "status": "paused",
            "agent_ids": ["support-agent-v1"],
            "event_types": ["*", "turn.completed"],
        },
        headers=admin(keys, 1),
    )
    assert paused.status_code == 200, paused.text
    assert paused.headers["etag"] == '"2"'
    assert {k: paused.json()[k] for k in ("status", "agent_ids", "event_types", "version")} == {
        "status": "paused",
        "agent_ids": ["support-agent-v1"],
        "event_types": ["*"],
        "version": 2,
    }
    stale = await api.patch(path, json={"status": "enabled"}, headers=admin(keys, 1))
    assert stale.status_code == 412 and stale.json()["current_version"] == 2

    for body, field in (
        ({"url": "https://attacker.example.net/"}, "url"),
        ({"secret_env": SIGNING_ENV}, "secret_env"),
        ({"status": None}, "status"),
        ({"event_types": ["nope"]}, "event_types.0"),
        ({"colour": "red"}, "colour"),
    ):
        refused = await api.patch(path, json=body, headers=admin(keys, 2))
        assert refused.status_code == 422, (body, refused.text)
        assert [p["field"] for p in refused.json()["errors"]] == [field]
    document = await stored(database, created["id"])
    assert (document["version"], document["url"], document["status"]) == (2, RECEIVER, "paused")

    all_agents = await api.patch(
        path, json={"agent_ids": None, "status": "enabled"}, headers=admin(keys, 2)
    )
    assert all_agents.json()["agent_ids"] is None and all_agents.json()["status"] == "enabled"


async def test_delete_removes_the_subscription(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await create(api, keys)
    path = f"{HOOKS}/{created['id']}"
    deleted = await api.delete(path, headers=admin(keys))
    assert deleted.status_code == 204 and deleted.content == b""
    missing = await api.get(path, headers=admin(keys))
    assert (
        missing.status_code == 404
        and missing.json()["type"] == "urn:switchboard:problem:webhook-not-found"
    )
    assert await database[SUBSCRIPTIONS].count_documents({}) == 0
    assert (await api.delete(path, headers=admin(keys))).status_code == 404


async def test_every_change_of_where_events_go_is_in_the_audit_trail_with_the_host_only(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    created = await create(api, keys, url="http://127.0.0.1:9/hooks/tenant-7f3a")
    path = f"{HOOKS}/{created['id']}"
    moved = await api.patch(
        path,
        json={"url": "https://hooks.example.com/in", "status": "paused"},
        headers=admin(keys, 1),
    )
    rotated = await api.post(f"{path}/rotate-secret", json={"grace_s": 60}, headers=admin(keys))
    deleted = await api.delete(path, headers=admin(keys))
    assert (moved.status_code, rotated.status_code, deleted.status_code) == (200, 200, 204)

    answer = await api.get("/api/v1/events", params={"limit": 200}, headers=keys.header("viewer"))
    trail = [
        e for e in answer.json()["items"] if e["details"].get("subscription_id") == created["id"]
    ]
    assert [(e["type"], e["details"]["host"], e["version"]) for e in reversed(trail)] == [
        ("webhook.created", "127.0.0.1", 1),
        ("webhook.updated", "hooks.example.com", 2),
        ("webhook.secret_rotated", "hooks.example.com", 3),
        ("webhook.deleted", "hooks.example.com", 3),
    ]
    assert {e["actor"] for e in trail} == {"test-admin"}
    assert trail[-1]["details"]["secret"] == "generated" and trail[-2]["details"]["changed"] == [
        "status",
        "url",
    ]
    assert (
        "tenant-7f3a" not in answer.text
        and created["secret"].removeprefix("whsec_")[:16] not in answer.text
    )


# -- test event and deliveries ---------------------------------------------------------------


async def test_the_test_event_lands_in_the_outbox_aimed_at_that_subscription_only(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await create(api, keys, event_types=["session.ended"], status="paused")
    accepted = await api.post(f"{HOOKS}/{created['id']}/test", headers=admin(keys))
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    assert accepted.json() == {"event_id": event_id, "subscription_id": created["id"]}

    event = await outbox_event(database, event_id)
    assert event["type"] == EventType.WEBHOOK_TEST and event["source"] == "switchboard/admin-api"
    assert event["target_subscription_id"] == created["id"] and event["fanned_out"] is False
    assert event["subject"] == created["id"] and event["data"]["subscription_id"] == created["id"]
    assert event["data"]["actor"] == "test-admin"
    assert (await api.post(f"{HOOKS}/sub_{'0' * 24}/test", headers=admin(keys))).status_code == 404


async def test_deliveries_are_listed_newest_first_and_failed_ones_redelivered(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    created = await create(api, keys)
    sub = created["id"]
    other = (await create(api, keys))["id"]
    await database[DELIVERIES].insert_many(
        [
            a_delivery(sub, 1, "failed"),
            a_delivery(
                sub,
                2,
                "delivered",
                attempts=1,
                last_error=None,
                last_status=204,
                delivered_at=datetime.now(UTC),
            ),
            a_delivery(sub, 3, "failed"),
            a_delivery(sub, 4, "pending", attempts=2),
            a_delivery(other, 5, "failed"),
        ]
    )
    first = await api.get(
        f"{HOOKS}/{sub}/deliveries", params={"limit": 3}, headers=keys.header("viewer")
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [d["event_id"][-1] for d in page["items"]] == ["4", "3", "2"]
    assert {
        k: page["items"][1][k]
        for k in ("status", "attempts", "last_error", "last_status", "last_response_ms")
    } == {
        "status": "failed",
        "attempts": 15,
        "last_error": "HTTP 503",
        "last_status": 503,
        "last_response_ms": 41,
    }
    rest = await api.get(
        f"{HOOKS}/{sub}/deliveries",
        params={"limit": 3, "cursor": page["next_cursor"]},
        headers=admin(keys),
    )
    assert [d["event_id"][-1] for d in rest.json()["items"]] == ["1"] and rest.json()[
        "next_cursor"
    ] is None
    failed = await api.get(
        f"{HOOKS}/{sub}/deliveries", params={"status": "failed"}, headers=admin(keys)
    )
    assert [d["event_id"][-1] for d in failed.json()["items"]] == ["3", "1"]
    listed = (await api.get(f"{HOOKS}/{sub}", headers=admin(keys))).json()
    assert listed["last_delivery"]["status"] == "pending"

    one = f"evt_{3:032x}|{sub}"
    again = await api.post(f"{HOOKS}/{sub}/deliveries/{one}/redeliver", headers=admin(keys))
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    document = await database[DELIVERIES].find_one({"_id": one})
    assert document["retrying_since"] is None and document["lease_owner"] is None
    assert abs(document["next_attempt_at"] - datetime.now(UTC)) < timedelta(seconds=10)
    pending = await api.post(f"{HOOKS}/{sub}/deliveries/{one}/redeliver", headers=admin(keys))
    assert pending.status_code == 409
    foreign = await api.post(
        f"{HOOKS}/{sub}/deliveries/evt_{5:032x}|{other}/redeliver", headers=admin(keys)
    )
    assert foreign.status_code == 404

    everything = await api.post(f"{HOOKS}/{sub}/redeliver-failed", headers=admin(keys))
    assert everything.status_code == 200 and everything.json() == {"redelivered": 1}
    statuses = {
        d["_id"][:36]: d["status"]
        async for d in database[DELIVERIES].find({"subscription_id": sub})
    }
    assert sorted(statuses.values()) == ["delivered", "pending", "pending", "pending"]
    assert (await database[DELIVERIES].find_one({"subscription_id": other}))["status"] == "failed"
