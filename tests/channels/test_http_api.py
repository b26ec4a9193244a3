"""The HTTP chat API end to end: a backend's key opens a conversation for its user, posts
messages (JSON and streamed), retries safely with an Idempotency-Key, is refused clearly (a
key the binding does not list, a huge message, a flood) and closes the conversation. The
scripted endpoint writes the replies; one conversation runs on the embedded model.
"""

import asyncio
import json
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.auth import KeyRing, Role
from agent_configs.channels import (
    CHANNEL_MESSAGES,
    ChannelBinding,
    ChannelKind,
    HttpChatSettings,
    RateLimit,
)
from agent_configs.cloudevents import OUTBOX
from channels.service import ChannelService
from tests.channels.conftest import EMBEDDED_TYPE, add_binding
from tests.worker.scripted_llm import REPLY, ScriptedLLM


async def backend_key(database: AsyncDatabase, name: str) -> str:
    _, token = await KeyRing(database).create(name, Role.TOKEN)
    return token


def http_binding(binding_id: str, *, keys: list[str], **more: Any) -> ChannelBinding:
    target = {"purpose": "support"} if "agent_id" not in more else {}
    return ChannelBinding(
        binding_id=binding_id,
        kind=ChannelKind.HTTP,
        http=HttpChatSettings(keys=keys),
        **(target | more),
    )


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_a_backend_opens_a_conversation_posts_streams_retries_and_closes_it(
    channel_service: ChannelService, channels_database: AsyncDatabase, channels_llm: ScriptedLLM
) -> None:
    token = await backend_key(channels_database, "shop-backend")
    await add_binding(channel_service, http_binding("shop-chat", keys=["shop-backend"]))
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{channel_service.url}/v1/channels/shop-chat"
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60) as http:
        opened = await http.post("/conversations", json={"user_id": "u-42"})
        assert opened.status_code == 201, opened.text
        conversation = opened.json()["conversation_id"]

        first = await http.post(
            f"/conversations/{conversation}/messages",
            json={"text": "My invoice is wrong"},
            headers={"Idempotency-Key": "order-1"},
        )
        assert first.status_code == 200, first.text
        answer = first.json()
        assert answer["reply"] == REPLY
        assert answer["agent_id"] == "support-agent-v1"
        assert answer["greeting"], "the first message's answer carries the greeting"
        assert set(answer["fields"]) >= {"system_response"}

        again = await http.post(
            f"/conversations/{conversation}/messages",
            json={"text": "My invoice is wrong"},
            headers={"Idempotency-Key": "order-1"},
        )
        assert again.json() == answer and again.headers["Idempotent-Replayed"] == "true"
        reused = await http.post(
            f"/conversations/{conversation}/messages",
            json={"text": "something else"},
            headers={"Idempotency-Key": "order-1"},
        )
        assert reused.status_code == 422
        assert reused.json()["errors"][0]["field"] == "Idempotency-Key"

        streamed = await http.post(
            f"/conversations/{conversation}/messages",
            json={"text": "And my plan?"},
            headers={"Accept": "text/event-stream"},
        )
        events = sse_events(streamed.text)
        kinds = [kind for kind, _ in events]
        assert kinds[-1] == "reply" and "delta" in kinds, kinds
        assert "".join(e["text"] for k, e in events if k == "delta") == REPLY
        last = events[-1][1]
        assert last["session_id"] == answer["session_id"], "one session for the conversation"
        assert last["turn_index"] == answer["turn_index"] + 1

        closed = await http.delete(f"/conversations/{conversation}")
        assert closed.status_code == 204
        after = await http.post(f"/conversations/{conversation}/messages", json={"text": "hi"})
        assert after.status_code == 409

    session = await channels_database["sessions"].find_one({"_id": answer["session_id"]})
    assert session is not None
    assert session["user_id"] == "http:shop-chat:u-42", "the trusted id, from the key's binding"
    assert session["channel"] == {
        "kind": "http",
        "binding_id": "shop-chat",
        "conversation_id": conversation,
    }
    statuses = await channels_database[CHANNEL_MESSAGES].distinct(
        "status", {"binding_id": "shop-chat"}
    )
    assert statuses == ["processed"]
    types = await channels_database[OUTBOX].distinct(
        "type", {"subject": f"shop-chat/{conversation}"}
    )
    assert sorted(types) == ["message.processed", "message.received"]
    sent = [m for body in channels_llm.requests for m in body.get("messages", [])]
    assert any("My invoice is wrong" in str(m.get("content")) for m in sent)


async def test_refusals_name_what_is_wrong_and_send_nothing_to_the_agent(
    channel_service: ChannelService, channels_database: AsyncDatabase
) -> None:
    token = await backend_key(channels_database, "flood-backend")
    other = await backend_key(channels_database, "someone-else")
    binding = http_binding(
        "tiny-chat",
        keys=["flood-backend"],
        max_message_chars=50,
        rate_limit=RateLimit(messages=2, window_s=60),
    )
    await add_binding(channel_service, binding)
    base = f"{channel_service.url}/v1/channels/tiny-chat"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        refused = await http.post(
            "/conversations", json={"user_id": "u-1"}, headers={"Authorization": f"Bearer {other}"}
        )
        assert refused.status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        bad = await http.post("/conversations", json={"user": "u-1"}, headers=auth)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "user_id"
        conversation = (
            await http.post("/conversations", json={"user_id": "u-1"}, headers=auth)
        ).json()["conversation_id"]
        path = f"/conversations/{conversation}/messages"

        huge = await http.post(path, json={"text": "x" * 51}, headers=auth)
        assert huge.status_code == 413 and huge.json()["code"] == "too_long"
        assert huge.json()["errors"][0]["field"] == "text"
        enormous = await http.post(path, content=b"x" * 300_000, headers=auth)
        assert enormous.status_code == 413
        unknown = await http.post(
            "/conversations/conv_unknown/messages", json={"text": "hi"}, headers=auth
        )
        assert unknown.status_code == 404 and "conv_unknown" in unknown.json()["title"]

        flood = await asyncio.gather(
            *(http.post(path, json={"text": f"hello {i}"}, headers=auth) for i in range(4))
        )
        codes = sorted(r.status_code for r in flood)
        assert codes.count(429) == 2, codes
        limited = next(r for r in flood if r.status_code == 429)
        assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 0

    records = await channels_database[CHANNEL_MESSAGES].find({"binding_id": "tiny-chat"}).to_list()
    refusals = sorted(r["error"]["code"] for r in records if r["status"] == "refused")
    assert refusals == ["rate_limited", "rate_limited", "too_long"]
    failed = await channels_database[OUTBOX].count_documents(
        {"type": "message.failed", "subject": f"tiny-chat/{conversation}"}
    )
    assert failed == 3


async def test_a_conversation_on_the_embedded_model_gets_an_answer(
    channel_service: ChannelService, channels_database: AsyncDatabase
) -> None:
    token = await backend_key(channels_database, "embedded-backend")
    binding = http_binding("embedded-chat-http", keys=["embedded-backend"], agent_id=EMBEDDED_TYPE)
    await add_binding(channel_service, binding)
    base = f"{channel_service.url}/v1/channels/embedded-chat-http"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as http:
        conversation = (await http.post("/conversations", json={"user_id": "u-9"})).json()[
            "conversation_id"
        ]
        answer = await http.post(
            f"/conversations/{conversation}/messages", json={"text": "Hello, who are you?"}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["agent_id"] == EMBEDDED_TYPE and body["session_id"]
    assert isinstance(body["reply"], str) and body["turn_index"] == 0


async def test_an_idle_conversation_is_closed_and_its_next_message_remembers_the_last_session(
    channel_service: ChannelService, channels_database: AsyncDatabase, channels_llm: ScriptedLLM
) -> None:
    """The room closes after idle_ttl_s (nothing of it stays open in the service); the next
    message opens a new session of a type with per-user memory, which is sent the first one."""
    token = await backend_key(channels_database, "memory-backend")
    binding = http_binding(
        "memory-chat", keys=["memory-backend"], agent_id="onboarding-agent-v1", idle_ttl_s=1
    )
    await add_binding(channel_service, binding)
    base = f"{channel_service.url}/v1/channels/memory-chat"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        conversation = (await http.post("/conversations", json={"user_id": "u-7"})).json()[
            "conversation_id"
        ]
        path = f"/conversations/{conversation}/messages"
        first = (await http.post(path, json={"text": "My cat is called Tom"})).json()
        health = f"{channel_service.url}/healthz"
        for _ in range(100):  # the sweep closes the room about a second after the reply
            if (await http.get(health)).json()["open_conversations"] == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the idle conversation's room was never closed")
        for _ in range(100):  # the next session's memory reads the recorded turn
            if await channels_database["turns"].find_one({"session_id": first["session_id"]}):
                break
            await asyncio.sleep(0.1)
        second = (await http.post(path, json={"text": "What is my cat called?"})).json()
    assert second["session_id"] != first["session_id"], "a new session after the idle TTL"
    assert second["turn_index"] == 0
    remembered = [
        body
        for body in channels_llm.requests
        if "What is my cat called?" in json.dumps(body)
        and "My cat is called Tom" in json.dumps(body)
    ]
    assert remembered, "the new session was not sent the user's earlier turn (per-user memory)"
