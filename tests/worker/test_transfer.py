"""The model hands the conversation over (`transfer_to_agent`) or ends it (`end_session`),
end to end through the real LiveKit server, worker and FerretDB. The model is the scripted
OpenAI-compatible endpoint (tests/worker/scripted_llm.py), which calls the tools a test
plans and records every request, so a test reads what the new agent was sent."""

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.capacity import SLOTS
from agent_configs.models import LLMSpec
from agent_configs.store import ConfigStore
from agent_configs.tools import EndSessionTool, EscalateToHumanTool, TransferToAgentTool
from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import RunningWorker, launched_workers, wait_for_session_end
from tests.worker.scripted_llm import REPLY, ScriptedLLM
from tests.worker.test_faults import eventually
from worker.conversation import HOLD_MESSAGE

pytestmark = pytest.mark.usefixtures("text_only_agents")

SOURCE = "support-agent-v1"
TARGET = "sales-agent-v1"
GOODBYE = "Thanks for calling, goodbye!"


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    with launched_workers(
        endpoints, worker_database.name, tmp_path_factory, prefix="sb-transfer"
    ) as (running,):
        yield running


@contextlib.asynccontextmanager
async def agents_changed(
    database: AsyncDatabase, changes: dict[str, dict[str, Any]]
) -> AsyncIterator[None]:
    """agent_id -> field changes, put back afterwards (the module's tests share the types)."""
    store = ConfigStore(database)
    before = {agent_id: await store.get(agent_id) for agent_id in changes}
    for agent_id, update in changes.items():
        await store.update(
            before[agent_id].model_copy(update=update), expected_version=before[agent_id].version
        )
    try:
        yield
    finally:
        for agent_id, update in changes.items():
            current = await store.get(agent_id)
            restored = current.model_copy(
                update={name: getattr(before[agent_id], name) for name in update}
            )
            await store.update(restored, expected_version=current.version)


def scripted_openai(endpoint: ScriptedLLM) -> LLMSpec:
    return LLMSpec(provider="openai", model="scripted", base_url=endpoint.url)


def sent_by(endpoint: ScriptedLLM, instructions: str) -> list[dict[str, Any]]:
    """The reply requests of the agent whose system prompt starts with `instructions`."""
    return [
        r
        for r in endpoint.requests
        if r.get("stream")
        and (r["messages"][0].get("content") or "").startswith(instructions.strip()[:60])
    ]


def replies_asked(endpoint: ScriptedLLM) -> list[dict[str, Any]]:
    """Reply requests (streamed); the turns' extraction calls and the summary are not."""
    return [r for r in endpoint.requests if r.get("stream")]


def user_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def transferred(client: RoomClient) -> dict[str, Any]:
    await client.wait_for(
        lambda: client.agent_attributes().get("switchboard.agent_id") == TARGET,
        60,
        "the target's attribute",
    )
    return await client.wait_for(
        lambda: client.data["agent-handoff"] and client.data["agent-handoff"][0],
        30,
        "agent-handoff",
    )


async def test_a_transfer_with_the_full_context_hands_the_conversation_to_the_target_which_continues_it(
    worker_database: AsyncDatabase, client: RoomClient, scripted: ScriptedLLM
) -> None:
    store = ConfigStore(worker_database)
    target_instructions = (await store.get(TARGET)).instructions
    transfer = TransferToAgentTool(targets=[TARGET], context="full")
    scripted.plan_tool_call("transfer_to_agent", target=TARGET, reason="wants a quote")
    changes = {
        SOURCE: {"llm": scripted_openai(scripted), "tools": [transfer]},
        TARGET: {"llm": scripted_openai(scripted), "max_concurrent_sessions": 3},
    }
    async with agents_changed(worker_database, changes):
        await client.join({"agent_id": SOURCE, "user_id": "u-transfer-full"})
        await client.next_transcript(0)  # support's greeting
        await client.say("I would like to buy the premium plan")
        handoff = await transferred(client)
        # support's answer to the tool's result, then sales continues with a reply of its own
        assert await client.next_transcript(1) == REPLY
        assert await client.next_transcript(2) == REPLY
        record = await worker_database["sessions"].find_one({"room": client.room_name})
        assert record is not None
        slots = (
            await worker_database[SLOTS].find({"session_id": record["session_id"]}).to_list(None)
        )
        assert [s["agent_id"] for s in slots] == [
            TARGET
        ]  # claimed for the target, support's given back
        await client.leave()
        ended = await wait_for_session_end(worker_database, client.room_name)

    assert {
        k: handoff[k] for k in ("from_agent_id", "to_agent_id", "strategy", "reason", "context")
    } == {
        "from_agent_id": SOURCE,
        "to_agent_id": TARGET,
        "strategy": "transfer_to_agent",
        "reason": "wants a quote",
        "context": "full",
    }
    [continued, *_] = sent_by(scripted, target_instructions)
    assert "I would like to buy the premium plan" in user_texts(
        continued
    )  # the whole conversation came along
    assert not any(
        t["function"]["name"] == "transfer_to_agent" for t in continued.get("tools") or []
    )
    assert ended["agent_id"] == TARGET
    [recorded] = ended["handoffs"]
    assert (recorded["from_agent_id"], recorded["to_agent_id"], recorded["context"]) == (
        SOURCE,
        TARGET,
        "full",
    )
    turns = (
        await worker_database["turns"]
        .find({"session_id": ended["session_id"]})
        .sort("turn_index", 1)
        .to_list(None)
    )
    assert turns[0]["agent_id"] == SOURCE  # the turn the transfer happened in is the source's
    assert [c["name"] for c in turns[0]["tool_calls"]] == ["transfer_to_agent"]


async def test_a_transfer_without_context_starts_the_target_afresh_with_its_greeting(
    worker_database: AsyncDatabase, client: RoomClient, scripted: ScriptedLLM
) -> None:
    store = ConfigStore(worker_database)
    target = await store.get(TARGET)
    scripted.plan_tool_call("transfer_to_agent", target=TARGET, reason="sales question")
    changes: dict[str, dict[str, Any]] = {
        SOURCE: {
            "llm": scripted_openai(scripted),
            "tools": [TransferToAgentTool(targets=[TARGET], context="none")],
        },
        TARGET: {"llm": scripted_openai(scripted)},
    }
    async with agents_changed(worker_database, changes):
        await client.join({"agent_id": SOURCE, "user_id": "u-transfer-none"})
        await client.next_transcript(0)
        await client.say("My secret question about invoices")
        await transferred(client)
        assert await client.next_transcript(1) == REPLY  # support says who takes over
        assert await client.next_transcript(2) == target.greeting
        await client.say("What does premium cost?")
        assert await client.next_transcript(3) == REPLY

    [fresh, *_] = sent_by(scripted, target.instructions)
    assert user_texts(fresh) == ["What does premium cost?"]  # nothing of the conversation before


async def test_a_transfer_with_a_summary_gives_the_target_a_note_of_the_conversation_not_the_transcript(
    worker_database: AsyncDatabase, client: RoomClient, scripted: ScriptedLLM
) -> None:
    target = await ConfigStore(worker_database).get(TARGET)
    scripted.plan_tool_call("transfer_to_agent", target=TARGET, reason="wants a quote")
    changes: dict[str, dict[str, Any]] = {
        SOURCE: {
            "llm": scripted_openai(scripted),
            "tools": [TransferToAgentTool(targets=[TARGET], context="summary")],
        },
        TARGET: {"llm": scripted_openai(scripted)},
    }
    async with agents_changed(worker_database, changes):
        await client.join({"agent_id": SOURCE, "user_id": "u-transfer-summary"})
        await client.next_transcript(0)
        await client.say("My order 4411 arrived broken and I want the premium plan instead")
        handoff = await transferred(client)
        assert await client.next_transcript(1) == REPLY  # support says who takes over
        assert await client.next_transcript(2) == REPLY  # sales continues, with no greeting

    assert handoff["context"] == "summary"
    [note_asked, *_] = [
        r
        for r in scripted.requests
        if not r.get("stream") and r["messages"][0]["content"].startswith("You write short notes")
    ]
    assert (
        "order 4411 arrived broken" in note_asked["messages"][1]["content"]
    )  # the note is of this conversation
    [continued, *_] = sent_by(scripted, target.instructions)
    assert continued["messages"][0]["content"].endswith(
        f"What happened so far: {REPLY}"
    )  # the model's note
    assert not any("4411" in text for text in user_texts(continued))  # and not the transcript


async def test_an_escalation_that_ends_says_its_message_and_ends_the_session_as_escalated(
    worker_database: AsyncDatabase, client: RoomClient, scripted: ScriptedLLM
) -> None:
    message = "A colleague will call you back within the hour."
    scripted.plan_tool_call("escalate_to_human", reason="legal complaint")
    changes = {
        SOURCE: {
            "llm": scripted_openai(scripted),
            "tools": [EscalateToHumanTool(then="end", message=message)],
        }
    }
    async with agents_changed(worker_database, changes):
        await client.join({"agent_id": SOURCE, "user_id": "u-escalate-end"})
        await client.next_transcript(0)
        await client.say("I want to file a legal complaint")
        [escalation] = await client.wait_for(
            lambda: client.data["agent-escalation"], 30, "agent-escalation"
        )
        await client.wait_for(lambda: message in client.transcripts, 60, "the escalation's message")
        record = await wait_for_session_end(worker_database, client.room_name)

    assert escalation["then"] == "end"
    assert (record["end_reason"], record["end_detail"]) == ("escalated", "legal complaint")
    assert [(e["reason"], e["then"]) for e in record["escalations"]] == [("legal complaint", "end")]
    assert message in [m["text"] for m in record["transcript"]]


async def test_end_session_says_the_goodbye_ends_the_job_and_records_the_reason(
    worker_database: AsyncDatabase, client: RoomClient, scripted: ScriptedLLM
) -> None:
    scripted.plan_tool_call("end_session", reason="the user is done")
    changes = {
        SOURCE: {"llm": scripted_openai(scripted), "tools": [EndSessionTool(goodbye=GOODBYE)]}
    }
    async with agents_changed(worker_database, changes):
        await client.join({"agent_id": SOURCE, "user_id": "u-end"})
        await client.next_transcript(0)
        await client.say("That's all, thanks")
        assert await client.next_transcript(2) == GOODBYE
        summary = await client.wait_for(
            lambda: client.data["conversation-summary"],
            60,
            "the summary, published before the agent leaves",
        )
        record = await wait_for_session_end(worker_database, client.room_name)
    assert summary[0]["summary"]
    assert (record["end_reason"], record["end_detail"]) == ("agent_ended", "the user is done")
    assert [m["text"] for m in record["transcript"]][-1] == GOODBYE


async def test_an_escalation_on_hold_tells_the_room_and_the_agent_stops_answering(
    worker_database: AsyncDatabase, client: RoomClient, scripted: ScriptedLLM
) -> None:
    scripted.plan_tool_call("escalate_to_human", reason="asks for a person")
    changes = {
        SOURCE: {"llm": scripted_openai(scripted), "tools": [EscalateToHumanTool(then="hold")]}
    }
    async with agents_changed(worker_database, changes):
        await client.join({"agent_id": SOURCE, "user_id": "u-escalate"})
        await client.next_transcript(0)
        await client.say("Let me talk to a human")
        [escalation] = await client.wait_for(
            lambda: client.data["agent-escalation"], 30, "agent-escalation"
        )
        assert await client.next_transcript(1) == HOLD_MESSAGE
        asked = len(replies_asked(scripted))
        await client.say("Hello? Anyone there?")

        async def answered_nothing() -> dict[str, Any] | None:
            record = await worker_database["sessions"].find_one({"room": client.room_name})
            texts = [m["text"] for m in (record or {}).get("transcript", [])]
            return record if texts[-1:] == ["Hello? Anyone there?"] else None

        # the message is recorded (the session record is rewritten with each message), and
        # nothing answered it: no reply was asked of the model, nothing was typed back
        await eventually(answered_nothing, 30, "the unanswered message in the session record")
        assert len(replies_asked(scripted)) == asked and len(client.transcripts) == 2
        record = await answered_nothing()

    assert record is not None
    assert {k: escalation[k] for k in ("agent_id", "reason", "then")} == {
        "agent_id": SOURCE,
        "reason": "asks for a person",
        "then": "hold",
    }
    assert escalation["session_id"] == record["session_id"]
    assert [(e["reason"], e["then"]) for e in record["escalations"]] == [
        ("asks for a person", "hold")
    ]
