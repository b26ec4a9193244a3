"""Each turn's latency marks (worker/latency.py), as the record and the `agent-turn` payload
carry them: from the user's message to the reply's first text, first audio and fields."""

import time

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from devstack.frontend import RoomClient
from tests.worker.conftest import agent_changed, wait_for_session_end
from tests.worker.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.usefixtures("text_only_agents")


async def test_a_typed_turn_carries_ordered_latency_marks_in_its_record_and_payload(
    client: RoomClient, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The scripted model answers: the marks are judged, not a reply, and a blank answer of
    the embedded model is a failed turn that never reaches the user as text."""
    async with agent_changed(worker_database, "support-agent-v1", llm=scripted.llm()):
        await client.join({"purpose": "support", "user_id": "u-latency"})
        await client.next_transcript(0)  # the greeting
        sent_at = time.monotonic()
        await client.say("My invoice shows a charge twice, can you check?")
        await client.next_transcript(1)
        whole_reply_s = time.monotonic() - sent_at  # the client read the whole reply by then
        payload = await client.next_turn(0)
    latency = payload["latency_ms"]
    assert payload["latency_from"] == "typed"
    assert set(latency) == {"first_text", "fields"}  # a text session has no audio
    assert 0 <= latency["first_text"] <= latency["fields"]
    # the first words were produced before the client had received the whole reply
    assert latency["first_text"] <= whole_reply_s * 1000 + 50

    # the waterfall (worker/waterfall.py): a typed turn's stages, ordered, from its origin
    waterfall = payload["waterfall"]
    stages = [s["stage"] for s in waterfall]
    assert set(stages) == {"message_received", "llm", "first_text", "fields"}
    assert stages[0] == "message_received" and waterfall[0]["start_ms"] == 0
    assert [s["start_ms"] for s in waterfall] == sorted(s["start_ms"] for s in waterfall)
    assert all(0 <= s["start_ms"] <= s["end_ms"] for s in waterfall)
    by_stage = {s["stage"]: s for s in waterfall}
    assert by_stage["llm"]["source"] == "livekit" and by_stage["llm"]["detail"] == "scripted"
    assert (
        by_stage["llm"]["end_ms"] <= by_stage["first_text"]["end_ms"]
    )  # the token before the words
    assert abs(by_stage["first_text"]["end_ms"] - latency["first_text"]) <= 1
    assert abs(by_stage["fields"]["end_ms"] - latency["fields"]) <= 1

    await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    stored = await worker_database["turns"].find_one(
        {"session_id": record["session_id"], "turn_index": 0}
    )
    assert stored["latency_ms"] == latency and stored["latency_from"] == "typed"
    assert stored["waterfall"] == waterfall
    # what the session cost: the reply and the summary, both from the scripted model
    cost = record["cost"]
    assert (cost["stt_audio_s"], cost["tts_characters"], cost["tool_calls"]) == (0, 0, 0)
    assert [(c["model"], c["requests"] >= 2) for c in cost["llm"]] == [("scripted", True)]
