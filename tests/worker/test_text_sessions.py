"""Text sessions end to end: a real client, the real worker, LiveKit, FerretDB and local LLM."""

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema
import pytest
from livekit import rtc
from prometheus_client.parser import text_string_to_metric_families
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.models import SummarySpec, TurnFill
from agent_configs.store import ConfigStore
from devstack.frontend import RoomClient
from devstack.services import reserve_port
from tests.worker.conftest import (
    RunningWorker,
    agent_changed,
    assert_the_model_answered,
    said_words,
    wait_for_session_end,
)
from tests.worker.scripted_llm import REPLY, ScriptedLLM, requested_schema

pytestmark = pytest.mark.usefixtures("text_only_agents")


async def test_support_chat_greets_answers_and_fills_turns(
    client: RoomClient, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    await client.join({"purpose": "support", "user_id": "u-chat", "user_details": {"tier": "free"}})
    assert await client.routed_agent() == ("support-agent-v1", "purpose")
    support = await ConfigStore(worker_database).get("support-agent-v1")
    assert await client.next_transcript(0) == support.greeting

    await client.say("My login is not working since this morning, can you help?")
    # The embedded model's words are not judged: the turn is published whatever they are.
    turn = await client.next_turn(0)
    assert turn["agent_id"] == "support-agent-v1" and turn["turn_index"] == 0
    assert_the_model_answered(turn)
    if said_words(turn):  # words were said: the user read the reply field, no more
        reply = await client.next_transcript(1)
        assert turn["fields"]["system_response"] == reply.strip()  # the stream may end in a space
        jsonschema.validate(turn["fields"], support.turn_schema.json_schema())

    room = client.room_name
    await client.leave()
    record = await wait_for_session_end(worker_database, room)
    assert record["agent_id"] == "support-agent-v1"
    assert record["routing"]["strategy"] == "purpose"
    assert record["user_id"] == "u-chat"
    assert [m["role"] for m in record["transcript"]][:2] == ["assistant", "user"]
    assert isinstance(record["summary"], str)  # written (by the model: its words not judged)
    assert record["usage"]["completion_tokens"] > 0
    stored_turn = await worker_database["turns"].find_one({"session_id": record["session_id"]})
    assert stored_turn["user_text"].startswith("My login")
    # 1: the fields came with the reply itself. 2: the model ran into its token cap before
    # closing the JSON (seen: "EOF while parsing a string"), the extraction call filled them.
    # That a whole reply needs no second call is shown with the scripted model (test_tool_turns).
    assert stored_turn["status"] == turn.get("status", "ok") and stored_turn["attempts"] <= 2, (
        stored_turn
    )


async def update_agent(database: AsyncDatabase, agent_id: str, **changes: object) -> None:
    store = ConfigStore(database)
    current = await store.get(agent_id)
    await store.update(current.model_copy(update=changes), expected_version=current.version)


async def test_a_config_edit_is_used_by_the_next_session(
    client: RoomClient, worker: RunningWorker, worker_database: AsyncDatabase, endpoints: Any
) -> None:
    await update_agent(
        worker_database, "onboarding-agent-v1", greeting="Hi! Version two of onboarding here."
    )
    await client.join({"purpose": "onboarding", "user_id": "u-edit"})
    assert await client.next_transcript(0) == "Hi! Version two of onboarding here."


async def test_fields_after_the_reply_and_no_summary_when_the_type_says_so(
    client: RoomClient, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The scripted model answers, ending its reply in blank lines as the embedded one did
    (seen: "\n\n"): the reply streams as written and the turn keeps its words without them.
    On the embedded model this test took 15 s and judged the fields only when the model had
    said words; the local model's constrained calls are judged in the first test here, in
    test_turn_tokens and in test_local_models."""
    interview = await ConfigStore(worker_database).get("pte-interview-agent-v1")
    after_reply = interview.turn_schema.model_copy(update={"fill": TurnFill.AFTER_REPLY})
    scripted.reply = REPLY + "\n\n"
    async with agent_changed(
        worker_database,
        interview.agent_id,
        llm=scripted.llm(),
        turn_schema=after_reply,
        summary=SummarySpec(enabled=False),
    ):
        await client.join({"purpose": "interview", "user_id": "u-after-reply"})
        await client.next_transcript(0)
        await client.say("Hello, I am ready for my practice interview.")
        turn = await client.next_turn(0)
        assert turn.get("status", "ok") == "ok", turn
        reply = await client.next_transcript(1)
        assert reply == REPLY + "\n\n"
        assert turn["fields"]["system_response"] == REPLY
        jsonschema.validate(turn["fields"], interview.turn_schema.json_schema())
        # the fields came from a call of their own, after the reply's plain-text one
        reply_request, fields_request = scripted.requests[-2:]
        assert reply_request.get("stream") and requested_schema(reply_request) is None
        assert requested_schema(fields_request) is not None

        await client.leave()
        record = await wait_for_session_end(worker_database, client.room_name)
    assert record["summary"] is None
    stored_turn = await worker_database["turns"].find_one({"session_id": record["session_id"]})
    assert (stored_turn["status"], stored_turn["attempts"]) == ("ok", 1), stored_turn


async def test_fallback_llm_answers_when_the_primary_is_down(
    client: RoomClient, worker: RunningWorker, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The fallback is the scripted model: which model answers adds nothing here, and with
    the embedded one's reply and summary the test took 6.9 s in a fresh run (0.6 s now)."""
    dead = f"http://127.0.0.1:{reserve_port(0, 'dead llm', 'UNUSED')}/v1"
    sales = await ConfigStore(worker_database).get("sales-agent-v1")
    primary = sales.llm.model_copy(update={"provider": "openai", "base_url": dead, "fallback": []})
    with_fallback = primary.model_copy(update={"fallback": [scripted.llm()]})
    await update_agent(worker_database, "sales-agent-v1", llm=with_fallback)
    try:
        await client.join({"purpose": "sales", "user_id": "u-fallback"})
        await client.next_transcript(0)
        await client.say("Tell me about your pricing.")
        assert (await client.next_turn(0)).get("status", "ok") == "ok"  # the fallback answered
    finally:
        await update_agent(worker_database, "sales-agent-v1", llm=sales.llm)


async def test_max_concurrent_sessions_holds_across_rooms(
    endpoints: Any, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    await update_agent(worker_database, "sales-agent-v1", max_concurrent_sessions=1)
    first = RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )
    second = RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )
    try:
        await first.join({"purpose": "sales", "user_id": "u-cap-1"})
        assert await first.routed_agent() == ("sales-agent-v1", "purpose")
        await second.join({"purpose": "sales", "user_id": "u-cap-2"})
        assert await second.routed_agent() == ("support-agent-v1", "default")
        await second.leave()
        trail = (await wait_for_session_end(worker_database, second.room_name))["routing"]["trail"]
        assert {
            "strategy": "purpose",
            "agent_id": "sales-agent-v1",
            "outcome": "skipped",
            "reason": "full: 1/1 sessions",
        } in trail
    finally:
        await first.leave()
        await second.leave()
        await update_agent(worker_database, "sales-agent-v1", max_concurrent_sessions=None)


async def test_memory_brings_back_earlier_turns_of_the_same_user(
    endpoints: Any, worker: RunningWorker, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The scripted model answers: memory is about the records, and a blank answer of the
    embedded one would leave nothing of the agent to remember."""
    rooms: list[str] = []
    async with agent_changed(worker_database, "support-agent-v1", llm=scripted.llm()):
        await two_visits(endpoints, worker, worker_database, rooms)
    first = await worker_database["sessions"].find_one({"room": rooms[0]})
    second = await worker_database["sessions"].find_one({"room": rooms[1]})
    assert first["memory_messages"] == 0
    assert second["memory_messages"] >= 2  # the first visit's user line and agent reply


async def two_visits(
    endpoints: Any, worker: RunningWorker, worker_database: AsyncDatabase, rooms: list[str]
) -> None:
    for visit in range(2):
        room = RoomClient(
            endpoints.livekit_url,
            endpoints.livekit_api_key,
            endpoints.livekit_api_secret,
            worker.agent_name,
        )
        try:
            await room.join({"purpose": "support", "user_id": "u-memory"})
            await room.next_transcript(0)
            await room.say(f"This is visit number {visit + 1}; my order 4471 never arrived.")
            assert said_words(await room.next_turn(0))
        finally:
            await room.leave()
        rooms.append(room.room_name)
        await wait_for_session_end(worker_database, room.room_name)


async def test_intent_hands_a_default_routed_session_to_the_matching_type(
    client: RoomClient, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """Also: the agent joins with its session id as an attribute (a frontend that knows the
    room finds the session at once), and that id is the session the record is under. Sales
    answers on the scripted model: the hand-off is a keyword match, no model's to make."""
    attributes_at_join: list[dict[str, str]] = []
    client.room.on(
        "participant_connected",
        lambda p: (
            attributes_at_join.append(dict(p.attributes))
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            else None
        ),
    )
    async with agent_changed(worker_database, "sales-agent-v1", llm=scripted.llm()):
        await client.join({"user_id": "u-intent"})
        assert await client.routed_agent() == ("support-agent-v1", "default")
        await client.next_transcript(0)
        await client.say("What is your pricing? Could I get a quote for ten seats?")
        attrs = await client.wait_for(
            lambda: (
                (a := client.agent_attributes()).get("switchboard.agent_id") == "sales-agent-v1"
                and a
            ),
            60,
            "the hand-off to sales",
        )
        assert attrs["switchboard.strategy"] == "intent"
        handoff = (
            await client.wait_for(lambda: client.data.get("agent-handoff"), 30, "agent-handoff")
        )[0]
        assert (
            handoff["to_agent_id"] == "sales-agent-v1"
            and "pricing" in handoff["match"]["matched_keywords"]
        )
        assert_the_model_answered(await client.next_turn(0))  # sales answered
        await client.leave()
        record = await wait_for_session_end(worker_database, client.room_name)
    assert record["agent_id"] == "sales-agent-v1"
    assert record["handoffs"][0]["from_agent_id"] == "support-agent-v1"
    assert [a.get("switchboard.session_id") for a in attributes_at_join] == [record["_id"]]


async def test_metrics_logs_and_events_tell_what_happened(
    client: RoomClient, worker: RunningWorker, worker_database: AsyncDatabase, scripted: ScriptedLLM
) -> None:
    """The scripted model answers: a blank answer of the embedded one records no
    time-to-first-token (a failed turn), and the metrics are what is judged here."""
    async with agent_changed(worker_database, "sales-agent-v1", llm=scripted.llm()):
        await client.join({"purpose": "sales", "user_id": "u-observed"})
        assert await client.routed_agent() == ("sales-agent-v1", "purpose")
        await client.next_transcript(0)
        await client.say("Hi, we are a team of five. What plans do you have?")
        assert await client.next_transcript(1) == REPLY
        await client.leave()
        record = await wait_for_session_end(worker_database, client.room_name)
    session_id = record["session_id"]

    # Samples written by the job process are served by the worker's metrics port.
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
    samples = {
        (family.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    started = samples.get(
        ("switchboard_sessions_started", (("agent_id", "sales-agent-v1"), ("strategy", "purpose")))
    )
    assert started is not None and started >= 1
    assert any(name == "switchboard_llm_time_to_first_token_seconds" for name, _ in samples)
    # the turn's waterfall stages, one histogram with a `stage` label (worker/sinks/metrics.py)
    stages = {
        dict(labels)["stage"]
        for name, labels in samples
        if name == "switchboard_turn_stage_seconds"
        and dict(labels).get("agent_id") == "sales-agent-v1"
    }
    assert {"message_received", "llm", "first_text", "fields"} <= stages

    events = await worker_database["events"].find({"session_id": session_id}).to_list(None)
    assert sorted(e["type"] for e in events) == ["session.ended", "session.started"]

    log_lines = [
        json.loads(line)
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    ended = [
        line
        for line in log_lines
        if line.get("session_id") == session_id and "session ended" in line["message"]
    ]
    assert (
        ended and ended[0]["room"] == client.room_name and ended[0]["agent_id"] == "sales-agent-v1"
    )


@pytest.mark.parametrize(
    "client_may_edit_metadata", [False, True], ids=["signed", "client-editable"]
)
async def test_memory_trusts_only_a_user_id_the_client_could_not_have_set(
    client: RoomClient, worker_database: AsyncDatabase, client_may_edit_metadata: bool
) -> None:
    victim = f"u-victim-{client_may_edit_metadata}"
    await worker_database["turns"].insert_one(
        {
            "_id": f"turn-of-{victim}",
            "session_id": "sess_earlier",
            "agent_id": "support-agent-v1",
            "user_id": victim,
            "user_text": "My card number ends in 4242.",
            "fields": {"system_response": "Thanks, I noted your card."},
            "created_at": datetime.now(UTC),
        }
    )
    # Only on the participant (no dispatch metadata), as a client-side SDK would set it.
    await client.join(
        {"purpose": "support", "user_id": victim},
        in_dispatch=False,
        may_update_own_metadata=client_may_edit_metadata,
    )
    await client.next_transcript(0)
    await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name)
    assert record["routing"]["metadata_source"] == "participant"
    if client_may_edit_metadata:
        assert record["memory_messages"] == 0 and record.get("user_id") is None
        assert any("user_id" in warning for warning in record["routing"]["warnings"])
    else:
        assert record["memory_messages"] == 2 and record["user_id"] == victim
