"""The worker's events in the outbox, from a real session by text on the real worker, LiveKit and
FerretDB: `session.started`, `turn.completed` with its fields, and `session.ended` with the
end-of-call report, in the documented CloudEvents shape; with MongoDB stopped while the
session ends, the `session.ended` event is in the outbox once it is back; the stale-session
sweep's `session.aborted`. The LLM is the
scripted endpoint (tests/worker/scripted_llm.py): instant, and its fields are predictable."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from livekit import rtc
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import LAST_SEQ, OUTBOX, WORKER_SOURCE, cloudevent
from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack import Endpoints
from devstack.frontend import RoomClient
from scripts.setup_agents import seed
from tests.cloudevents import CLOUDEVENT_KEYS
from tests.worker.conftest import agent_changed, launched_workers, wait_for_session_end
from tests.worker.scripted_llm import REPLY, ScriptedLLM
from tests.worker.test_database_down import OwnFerretDB, in_thread
from tests.worker.test_faults import AGENT, eventually, new_client, through
from worker.records import abort_stale_sessions

pytestmark = pytest.mark.usefixtures("text_only_agents")

REPORT_KEYS = {
    "session_id",
    "room",
    "agent_id",
    "agent_version",
    "user_id",
    "started_at",
    "ended_at",
    "duration_s",
    "end_reason",
    "end_detail",
    "summary",
    "transcript",
    "transcript_dropped",
    "turn_count",
    "turns",
    "turns_dropped",
    "usage",
    "latency",
    "routing",
    "handoffs",
    "escalations",
}


def agent_present(client: RoomClient) -> bool:
    return any(
        p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        for p in client.room.remote_participants.values()
    )


async def chat_then_end(client: RoomClient, user_id: str, text: str) -> None:
    """Greeting, one exchange with its fields, then the user ends the session (`switchboard.end`)."""
    await client.join({"purpose": "onboarding", "user_id": user_id})
    await client.next_transcript(0)
    await client.say(text)
    assert await client.next_transcript(1) == REPLY
    await client.wait_for(lambda: client.data.get("agent-turn"), 60, "the turn's fields")
    await client.room.local_participant.publish_data(
        json.dumps({}), reliable=True, topic="switchboard.end"
    )
    await client.wait_for(lambda: not agent_present(client), 90, "the agent to leave")


async def event(database: AsyncDatabase, event_id: str, timeout: float = 60.0) -> dict[str, Any]:
    async def stored() -> dict[str, Any] | None:
        return await database[OUTBOX].find_one({"_id": event_id})

    return await eventually(stored, timeout, f"outbox event {event_id}")


async def test_a_text_session_puts_started_turn_and_ended_events_with_the_end_of_call_report_in_the_outbox(
    client: RoomClient, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    async with agent_changed(worker_database, AGENT, llm=through(scripted)):
        await chat_then_end(client, "u-events", "I just signed up, what now?")
        record = await wait_for_session_end(worker_database, client.room_name)
        session_id = record["session_id"]
        ended = await event(worker_database, f"{session_id}:ended")

    documents = (
        await worker_database[OUTBOX].find({"session_id": session_id}).sort("seq", 1).to_list(None)
    )
    assert [(d["_id"], d["type"], d["seq"]) for d in documents] == [
        (f"{session_id}:started", "session.started", 0),
        (f"{session_id}:turn:0", "turn.completed", 1),
        (f"{session_id}:ended", "session.ended", LAST_SEQ),
    ]
    for document in documents:
        sent = cloudevent(document)
        assert set(sent) == CLOUDEVENT_KEYS and json.loads(json.dumps(sent)) == sent
        assert (sent["specversion"], sent["source"], sent["subject"]) == (
            "1.0",
            WORKER_SOURCE,
            session_id,
        )
        assert sent["time"].endswith("Z") and sent["datacontenttype"] == "application/json"
        assert (document["ordering_key"], document["agent_id"], document["fanned_out"]) == (
            session_id,
            AGENT,
            False,
        )

    started, turn = documents[0]["data"], documents[1]["data"]
    assert (started["agent_id"], started["agent_version"], started["user_id"]) == (
        AGENT,
        record["agent_version"],
        "u-events",
    )
    assert started["routing"]["strategy"] == "purpose" and started["routing"]["trail"]
    assert started["routing"]["trail"][-1]["agent_id"] == AGENT

    assert (turn["turn_index"], turn["status"], turn["user_text"], turn["reply"]) == (
        0,
        "ok",
        "I just signed up, what now?",
        REPLY,
    )
    stored_turn = await worker_database["turns"].find_one({"_id": f"{session_id}:0"})
    assert turn["fields"] == stored_turn["fields"] and turn["fields"]["system_response"] == REPLY
    assert set(turn["latency_ms"]) >= {"first_text", "fields"} and turn["latency_from"] == "typed"
    assert turn["tool_calls"] == [] and turn["agent_version"] == record["agent_version"]

    report = ended["data"]
    assert set(report) == REPORT_KEYS
    assert (report["end_reason"], report["agent_id"], report["agent_version"]) == (
        "user_ended",
        AGENT,
        record["agent_version"],
    )
    assert report["summary"] == record["summary"] and report["summary"]
    assert report["transcript"] == record["transcript"]
    assert [m["role"] for m in report["transcript"]] == ["assistant", "user", "assistant"]
    assert report["turns"] == [turn] and (report["turn_count"], report["turns_dropped"]) == (1, 0)
    assert report["usage"] == record["usage"] and set(report["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
    }
    assert report["latency"]["first_text"]["count"] == 1
    assert report["latency"]["first_text"]["p95_ms"] == turn["latency_ms"]["first_text"]
    assert report["routing"] == started["routing"]
    assert report["handoffs"] == [] and report["escalations"] == []
    assert report["duration_s"] > 0 and report["started_at"] < report["ended_at"]


# -- MongoDB stopped while the session ends ---------------------------------------------------


@pytest.fixture
async def ferretdb(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OwnFerretDB]:
    del endpoints  # the devstack builds the binaries first
    own = OwnFerretDB(tmp_path_factory.mktemp("outbox-ferretdb") / "data")
    await in_thread(own.start)
    try:
        yield own
    finally:
        await in_thread(own.stop)


@pytest.fixture
async def own_database(
    ferretdb: OwnFerretDB, scripted: ScriptedLLM
) -> AsyncIterator[AsyncDatabase]:
    """The built-in agent types, text only, the onboarding one on the scripted model."""
    client = open_client(ferretdb.uri)
    database = client["outbox_down"]
    store = ConfigStore(database)
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    await seed(store, configs)
    await RulesStore(database).ensure_indexes()
    for config in (await store.list_agents()).items:
        changes: dict[str, Any] = {"modalities": ["text"], "stt": None, "tts": None, "vad": None}
        if config.agent_id == AGENT:
            changes["llm"] = through(scripted)
        await store.update(config.model_copy(update=changes), expected_version=config.version)
    try:
        yield database
    finally:
        await client.close()


async def test_mongodb_stopped_while_a_session_ends_still_leaves_its_ended_event_in_the_outbox_once_it_is_back(
    endpoints: Endpoints,
    ferretdb: OwnFerretDB,
    own_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with launched_workers(
        endpoints,
        own_database.name,
        tmp_path_factory,
        prefix="sb-outbox-down",
        extra_env={"MONGO_URI": ferretdb.uri},
    ) as (worker,):
        during = new_client(endpoints, worker.agent_name)
        try:
            await during.join({"purpose": "onboarding", "user_id": "u-down"})
            await during.next_transcript(0)
            session = await eventually(
                lambda: own_database["sessions"].find_one({"room": during.room_name}),
                30,
                "the session record",
            )
            session_id = session["session_id"]
            await during.say("Where do I invite my team?")
            assert await during.next_transcript(1) == REPLY
            await during.wait_for(lambda: during.data.get("agent-turn"), 60, "the turn's fields")

            await in_thread(ferretdb.stop)  # the session ends with MongoDB away: its writer spools
            await during.room.local_participant.publish_data(
                json.dumps({}), reliable=True, topic="switchboard.end"
            )
            await during.wait_for(lambda: not agent_present(during), 90, "the agent to leave")
        finally:
            await during.leave()
        await in_thread(ferretdb.start)

        probe = new_client(endpoints, worker.agent_name)  # a job start replays the spool
        try:
            await probe.join({"purpose": "onboarding", "user_id": "u-probe"})
            await probe.next_transcript(0)
        finally:
            await probe.leave()
        ended = await event(own_database, f"{session_id}:ended", timeout=90)

    report = ended["data"]
    assert (ended["type"], report["end_reason"], report["user_id"]) == (
        "session.ended",
        "user_ended",
        "u-down",
    )
    assert [t["user_text"] for t in report["turns"]] == ["Where do I invite my team?"]
    assert (
        report["turns"][0]["status"] == "ok"
        and report["turns"][0]["fields"]["system_response"] == REPLY
    )
    assert (
        await own_database[OUTBOX].count_documents({"session_id": session_id}) == 3
    )  # started, turn, ended


# -- a session whose worker was lost ----------------------------------------------------------


async def test_the_stale_session_sweep_puts_one_session_aborted_event_with_what_the_record_held(
    worker_database: AsyncDatabase,
) -> None:
    session_id = f"sess_lost{datetime.now(UTC).timestamp():.0f}"
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    transcript = [
        {"role": "assistant", "text": "Hi!"},
        {"role": "user", "text": "Hello"},
        {"role": "assistant", "text": REPLY},
    ]
    await worker_database["sessions"].insert_one(
        {
            "_id": session_id,
            "session_id": session_id,
            "room": "lost-room",
            "agent_id": AGENT,
            "agent_version": 2,
            "user_id": "u-lost",
            "status": "active",
            "started_at": long_ago,
            "routing": {"agent_id": AGENT, "strategy": "purpose", "trail": []},
            "transcript": transcript,
            "transcript_dropped": 0,
            "turn_count": 1,
        }
    )
    await worker_database["turns"].insert_one(
        {
            "_id": f"{session_id}:0",
            "session_id": session_id,
            "turn_index": 0,
            "agent_id": AGENT,
            "agent_version": 2,
            "user_text": "Hello",
            "reply": REPLY,
            "status": "replied",
            "fields": {"system_response": REPLY},
            "latency_ms": {"first_text": 120},
            "latency_from": "typed",
        }
    )

    assert await abort_stale_sessions(worker_database, 60) >= 1
    assert await abort_stale_sessions(worker_database, 60) == 0  # swept once: no second event
    aborted = await worker_database[OUTBOX].find({"session_id": session_id}).to_list(None)
    assert [(d["_id"], d["type"], d["seq"], d["fanned_out"]) for d in aborted] == [
        (f"{session_id}:aborted", "session.aborted", LAST_SEQ, False)
    ]
    report = aborted[0]["data"]
    assert set(report) == REPORT_KEYS | {"last_heartbeat_at"}
    assert (report["end_reason"], report["summary"], report["user_id"]) == (
        "worker_lost",
        None,
        "u-lost",
    )
    assert report["transcript"] == transcript
    assert [(t["turn_index"], t["status"], t["fields"]) for t in report["turns"]] == [
        (0, "replied", {"system_response": REPLY})
    ]
    assert report["routing"]["strategy"] == "purpose"
