"""Text sessions end to end: a real client, the real worker, LiveKit, FerretDB and local LLM."""

import asyncio

import jsonschema
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.store import ConfigStore
from tests.worker.conftest import RunningWorker
from tests.worker.room_client import RoomClient


@pytest.fixture(scope="module", autouse=True)
async def text_only_agents(worker_database: AsyncDatabase) -> None:
    """Chat-only agent types: no STT, TTS or VAD in the session (voice has its own module)."""
    store = ConfigStore(worker_database)
    for config in (await store.list_agents()).items:
        text_only = config.model_copy(update={"modalities": ["text"], "stt": None, "tts": None, "vad": None})
        await store.update(text_only, expected_version=config.version)


async def wait_for_session_end(database: AsyncDatabase, room: str, timeout: float = 120.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        record = await database["sessions"].find_one({"room": room, "status": {"$in": ["ended", "refused"]}})
        if record is not None:
            return record
        await asyncio.sleep(0.5)
    raise AssertionError(f"no ended session record for room {room}")


async def test_support_chat_greets_answers_and_fills_turns(
    client: RoomClient, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    await client.join({"purpose": "support", "user_id": "u-chat", "user_details": {"tier": "free"}})
    assert await client.routed_agent() == ("support-agent-v1", "purpose")
    support = await ConfigStore(worker_database).get("support-agent-v1")
    assert await client.next_transcript(0) == support.greeting

    await client.say("My login is not working since this morning, can you help?")
    reply = await client.next_transcript(1)
    assert reply.strip()

    turns = await client.wait_for(lambda: client.data.get("agent-turn"), 180, "an agent-turn payload")
    turn = turns[0]
    assert turn["agent_id"] == "support-agent-v1" and turn["turn_index"] == 0
    assert turn["fields"]["system_response"] == reply
    jsonschema.validate(turn["fields"], support.turn_schema.json_schema())

    room = client.room_name
    await client.leave()
    record = await wait_for_session_end(worker_database, room)
    assert record["agent_id"] == "support-agent-v1"
    assert record["routing"]["strategy"] == "purpose"
    assert record["user_id"] == "u-chat"
    assert [m["role"] for m in record["transcript"]][:3] == ["assistant", "user", "assistant"]
    assert record["summary"]
    assert record["usage"]["completion_tokens"] > 0
    stored_turn = await worker_database["turns"].find_one({"session_id": record["session_id"]})
    assert stored_turn["status"] in ("ok", "failed") and stored_turn["user_text"].startswith("My login")
