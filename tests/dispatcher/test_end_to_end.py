"""The whole events path with nothing written by hand: a real text session on the real worker
(LiveKit, FerretDB, the scripted model endpoint), lifecycle and routing writes through the
admin API app, a subscription created through `POST /api/v1/webhooks` with the secret it shows
once, a real `python -m dispatcher`, and a loopback receiver that verifies every signature with
the `standardwebhooks` library. Every event produced arrives once, signed, in the documented
CloudEvents shape, and a session's events arrive in their order."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import OUTBOX, cloudevent
from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.admin_api.conftest import Keys, admin_settings, make_keys, running_app
from tests.cloudevents import CLOUDEVENT_KEYS
from tests.dispatcher.conftest import Start, until
from tests.dispatcher.receiver import Receiver
from tests.factories import support_definition

# The real worker and its module-scoped database, as the worker tests use them.
from tests.worker.conftest import (  # noqa: F401
    agent_changed,
    client,
    scripted,
    text_only_agents,
    wait_for_session_end,
    worker,
    worker_database,
)
from tests.worker.test_faults import AGENT, through
from tests.worker.test_outbox_events import chat_then_end
from worker.records import abort_stale_sessions

pytestmark = pytest.mark.usefixtures("text_only_agents")

HOOKS = "/api/v1/webhooks"
AGENTS = "/api/v1/agents"
PRODUCED_TYPES = {
    "session.started",
    "turn.completed",
    "session.ended",
    "session.aborted",
    "agent.created",
    "agent.updated",
    "agent.paused",
    "agent.resumed",
    "agent.rolled_back",
    "agent.archived",
    "routing.updated",
    "webhook.test",
}


@pytest.fixture
def database_name(worker_database: AsyncDatabase) -> str:
    """The dispatcher and the admin API work on the worker's database: one deployment."""
    return worker_database.name


@pytest.fixture
async def api(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    encryption_key: str,
    tmp_path: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = admin_settings(
        endpoints,
        worker_database.name,
        webhook_encryption_key=encryption_key,
        admin_api_spool_dir=tmp_path / "spool",
    )
    async with running_app(settings) as (_, client_):
        yield client_


def if_match(keys: Keys, version: int) -> dict[str, str]:
    return keys.header("admin") | {"If-Match": f'"{version}"'}


async def lifecycle_through_the_api(api: httpx.AsyncClient, keys: Keys) -> None:
    """create, update, pause, resume, roll back, archive; the routing rules saved as they were
    (so the worker routes the same way) for a `routing.updated`."""
    admin = keys.header("admin")
    path = f"{AGENTS}/e2e-agent"
    definition = support_definition(agent_id="e2e-agent", name="E2E", purposes=["e2e"])
    answers = [
        await api.post(AGENTS, json=definition, headers=admin),
        await api.patch(path, json={"greeting": "Hello from e2e"}, headers=if_match(keys, 1)),
        await api.post(f"{path}/pause", headers=admin),
        await api.post(f"{path}/resume", headers=admin),
        await api.post(f"{path}/rollback", json={"version": 1}, headers=admin),
        await api.delete(path, headers=admin),
    ]
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200, 200], [
        a.text for a in answers
    ]
    current = await api.get("/api/v1/routing", headers=admin)
    assert current.status_code == 200, current.text
    rules = current.json()
    saved = await api.put(
        "/api/v1/routing", json={"chain": rules["chain"]}, headers=if_match(keys, rules["version"])
    )
    assert saved.status_code == 200, saved.text


async def a_stale_session(database: AsyncDatabase) -> str:
    """A session whose worker was lost ten minutes ago, for the sweep's `session.aborted`."""
    session_id = f"sess_e2elost{datetime.now(UTC).timestamp():.0f}"
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    await database["sessions"].insert_one(
        {
            "_id": session_id,
            "session_id": session_id,
            "room": "e2e-lost-room",
            "agent_id": AGENT,
            "agent_version": 1,
            "user_id": "u-lost",
            "status": "active",
            "started_at": long_ago,
            "routing": {"agent_id": AGENT, "strategy": "purpose", "trail": []},
            "transcript": [],
            "transcript_dropped": 0,
            "turn_count": 0,
        }
    )
    assert await abort_stale_sessions(database, 60) >= 1
    return session_id


async def test_every_event_produced_by_the_worker_and_the_admin_api_reaches_a_verifying_receiver_once_in_order(
    client: RoomClient,
    worker_database: AsyncDatabase,
    scripted,
    api: httpx.AsyncClient,
    receiver: Receiver,
    start_dispatcher: Start,
) -> None:
    receiver.start()
    keys = await make_keys(worker_database)
    created = await api.post(
        HOOKS,
        json={"url": receiver.url("/hook"), "description": "e2e"},
        headers=keys.header("admin"),
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    receiver.secrets = {"/hook": [subscription["secret"]]}  # the one time the API shows it
    await start_dispatcher()

    async with agent_changed(worker_database, AGENT, llm=through(scripted)):
        await chat_then_end(client, "u-e2e", "I just signed up, what now?")
        record = await wait_for_session_end(worker_database, client.room_name)
    session_id = record["session_id"]
    lost_id = await a_stale_session(worker_database)
    await lifecycle_through_the_api(api, keys)
    tested = await api.post(f"{HOOKS}/{subscription['id']}/test", headers=keys.header("admin"))
    assert tested.status_code in (200, 202), tested.text

    async def outbox_complete() -> list[dict[str, Any]] | None:
        documents = await worker_database[OUTBOX].find().to_list(None)
        return documents if {d["type"] for d in documents} >= PRODUCED_TYPES else None

    documents = await until(outbox_complete, "every event type in the outbox", timeout=60)
    by_id = {d["_id"]: d for d in documents}
    await until(
        lambda: {r.webhook_id for r in receiver.all()} >= set(by_id),
        "every event at the receiver",
        60,
    )

    received = receiver.all()
    assert [r.webhook_id for r in received if not r.verified] == [], "every signature verifies"
    ids = [r.webhook_id for r in received]
    assert sorted(ids) == sorted(by_id), "each event exactly once"
    assert {by_id[i]["type"] for i in ids} == PRODUCED_TYPES
    for request in received:
        assert request.status == 200
        assert request.headers["content-type"] == "application/cloudevents+json"
        assert request.headers["webhook-id"] == request.body["id"]
        assert set(request.body) == CLOUDEVENT_KEYS and request.body["specversion"] == "1.0"
        assert request.body == json.loads(json.dumps(cloudevent(by_id[request.webhook_id])))

    session_types = [by_id[i]["type"] for i in ids if by_id[i]["ordering_key"] == session_id]
    assert session_types == ["session.started", "turn.completed", "session.ended"]
    ended = next(r.body for r in received if r.webhook_id == f"{session_id}:ended")
    assert (ended["subject"], ended["data"]["end_reason"], ended["data"]["summary"]) == (
        session_id,
        "user_ended",
        record["summary"],
    )
    assert [t["user_text"] for t in ended["data"]["turns"]] == ["I just signed up, what now?"]
    assert [by_id[i]["type"] for i in ids if by_id[i]["ordering_key"] == lost_id] == [
        "session.aborted"
    ]
    agent_types = [by_id[i]["type"] for i in ids if by_id[i]["ordering_key"] == "agent:e2e-agent"]
    assert agent_types == [
        "agent.created",
        "agent.updated",
        "agent.paused",
        "agent.resumed",
        "agent.rolled_back",
        "agent.archived",
    ]
    (test_event,) = [r.body for r in received if r.body["type"] == "webhook.test"]
    assert test_event["subject"] == subscription["id"]
