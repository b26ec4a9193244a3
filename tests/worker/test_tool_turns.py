"""Turns that call tools, end to end: a real worker on the real LiveKit server and FerretDB,
the model a scripted OpenAI-compatible endpoint (tests/worker/scripted_llm.py) that calls the
tools a test plans, the tool a real HTTP server on loopback (tests/worker/tool_server.py).

The type under test talks to the scripted endpoint as an `openai` provider, so its replies
are the constrained JSON call that carries the tools too (OpenAI accepts both in one
request); the last test uses the real local model, whose server cannot call tools under a
JSON schema, so its fields come from the extraction call instead.
"""

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import OUTBOX
from agent_configs.models import LLMSpec, SummarySpec
from agent_configs.store import ConfigStore
from agent_configs.tools import EndSessionTool, HttpTool
from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import (
    RunningWorker,
    agent_changed,
    launched_workers,
    wait_for_session_end,
)
from tests.worker.scripted_llm import REPLY, ScriptedLLM, tool_results
from tests.worker.test_bounded_inputs import eventually
from tests.worker.tool_server import ToolServer
from worker.tools.context import ARGUMENTS_CHARS, TRUNCATED

pytestmark = pytest.mark.usefixtures("text_only_agents")

AGENT = "support-agent-v1"
LOCAL_AGENT = "sales-agent-v1"
ORDER_PARAMETERS = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "description": "The order number."}},
    "required": ["order_id"],
}


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    with launched_workers(endpoints, worker_database.name, tmp_path_factory, prefix="sb-tools") as (
        running,
    ):
        yield running


@pytest.fixture
async def tool_server() -> AsyncIterator[ToolServer]:
    server = await ToolServer(slow_s=3.0).start()
    try:
        yield server
    finally:
        await server.stop()


def scripted_openai(endpoint: ScriptedLLM) -> LLMSpec:
    """An OpenAI-compatible server that takes tools and a JSON schema together, as OpenAI does."""
    return LLMSpec(provider="openai", model="scripted", base_url=endpoint.url)


def order_tools(server: ToolServer) -> list[HttpTool]:
    return [
        HttpTool(
            name="lookup_order",
            description="Look an order up by its number.",
            url=f"{server.url}/orders/{{order_id}}",
            parameters=ORDER_PARAMETERS,
            result_pointer="/order",
        ),
        HttpTool(
            name="slow_lookup",
            description="Look an order up in the archive.",
            url=f"{server.url}/slow",
            parameters=ORDER_PARAMETERS,
            timeout_s=0.5,
        ),
    ]


async def turn_with_tools(client: RoomClient, after: int = 0) -> dict[str, Any]:
    """The next completed `agent-turn` payload (with its fields) after the first `after`."""
    return await client.wait_for(
        lambda: (
            len(turns := [t for t in client.data["agent-turn"] if t.get("fields")]) > after
            and turns[after]
        ),
        60,
        f"agent-turn #{after + 1}",
    )


async def test_a_turn_calls_an_http_tool_and_the_reply_its_fields_and_the_call_reach_the_room_and_the_record(
    worker_database: AsyncDatabase,
    client: RoomClient,
    scripted: ScriptedLLM,
    tool_server: ToolServer,
) -> None:
    scripted.plan_tool_call("lookup_order", order_id="A-123")
    async with agent_changed(
        worker_database, AGENT, llm=scripted_openai(scripted), tools=order_tools(tool_server)
    ):
        await client.join({"agent_id": AGENT, "user_id": "u-tools"})
        await client.next_transcript(0)  # the greeting
        await client.say("Where is my order A-123?")
        assert await client.next_transcript(1) == REPLY
        turn = await turn_with_tools(client)

    # the tool got the model's arguments, and its result (the JSON pointer's part) went back
    assert [(r.method, r.path) for r in tool_server.requests] == [("GET", "/orders/A-123")]
    first, second = scripted.requests[-2:]
    assert {t["function"]["name"] for t in first["tools"]} == {"lookup_order", "slow_lookup"}
    assert first["response_format"]["type"] == "json_schema"  # tools and the schema together
    assert tool_results(second) == ['{"id":"A-123","status":"shipped"}']

    [call] = turn["tool_calls"]
    assert (call["name"], call["arguments"], call["ok"]) == (
        "lookup_order",
        {"order_id": "A-123"},
        True,
    )
    assert "shipped" in call["result_preview"] and call["duration_ms"] >= 0
    assert turn["fields"]["system_response"] == REPLY and turn.get("status") != "failed"
    assert len(turn["fields"]) > 1  # the schema's other fields, from the same (final) generation

    record = await worker_database["turns"].find_one(
        {"session_id": turn["session_id"], "turn_index": turn["turn_index"], "status": "ok"}
    )
    assert record is not None and record["tool_calls"] == turn["tool_calls"]
    assert record["reply"] == REPLY and record["attempts"] == 1  # no extraction call was needed


async def test_a_tool_that_times_out_gives_the_model_an_error_result_and_the_conversation_goes_on(
    worker_database: AsyncDatabase,
    client: RoomClient,
    scripted: ScriptedLLM,
    tool_server: ToolServer,
) -> None:
    scripted.plan_tool_call("slow_lookup", order_id="B-7")
    async with agent_changed(
        worker_database, AGENT, llm=scripted_openai(scripted), tools=order_tools(tool_server)
    ):
        await client.join({"agent_id": AGENT, "user_id": "u-tools-slow"})
        await client.next_transcript(0)
        await client.say("And my old order B-7?")
        assert await client.next_transcript(1) == REPLY
        turn = await turn_with_tools(client)
        assert tool_results(scripted.requests[-1]) == ['{"error": "timeout after 0.5s"}']
        [call] = turn["tool_calls"]
        assert (call["name"], call["ok"], call["error"]) == (
            "slow_lookup",
            False,
            "timeout after 0.5s",
        )

        await client.say("Thanks, anything else?")  # the session still answers, without tools
        assert await client.next_transcript(2) == REPLY
        assert (await turn_with_tools(client, after=1))["tool_calls"] == []


async def test_a_megabyte_argument_is_stored_and_published_cut_to_the_cap(
    worker_database: AsyncDatabase,
    client: RoomClient,
    scripted: ScriptedLLM,
    tool_server: ToolServer,
) -> None:
    """Uncut, every turn of a long session carried it into `session.ended`, past MongoDB's
    16 MB: the event was dead-lettered. The tool itself still gets the whole argument."""
    note_tool = HttpTool(
        name="add_note",
        description="Add a note to an order.",
        method="POST",
        url=f"{tool_server.url}/orders/{{order_id}}/notes",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "note": {"type": "string"}},
            "required": ["order_id"],
        },
    )
    note = "n" * 1_000_000
    scripted.plan_tool_call("add_note", order_id="A-9", note=note)
    async with agent_changed(
        worker_database, AGENT, llm=scripted_openai(scripted), tools=[note_tool]
    ):
        await client.join({"agent_id": AGENT, "user_id": "u-tools-big"})
        await client.next_transcript(0)
        await client.say("Please add my note to A-9.")
        assert await client.next_transcript(1) == REPLY
        turn = await turn_with_tools(client)
        await client.room.local_participant.publish_data(
            json.dumps({}), reliable=True, topic="switchboard.end"
        )
        record = await wait_for_session_end(worker_database, client.room_name)

    assert [r.body for r in tool_server.requests] == [{"note": note}]
    [call] = turn["tool_calls"]
    assert call["arguments_truncated"] is True and call["arguments"]["order_id"] == "A-9"
    assert call["arguments"]["note"].endswith(TRUNCATED)
    assert len(json.dumps(call["arguments"])) <= ARGUMENTS_CHARS + 100

    session_id = record["session_id"]
    stored = await worker_database["turns"].find_one({"_id": f"{session_id}:0"})
    published = await worker_database[OUTBOX].find_one({"_id": f"{session_id}:turn:0"})
    ended = await eventually(
        lambda: worker_database[OUTBOX].find_one({"_id": f"{session_id}:ended"}),
        60,
        "the session.ended event",
    )
    assert stored["tool_calls"] == published["data"]["tool_calls"] == turn["tool_calls"]
    assert ended["data"]["turns"][0]["tool_calls"] == turn["tool_calls"]


async def test_a_session_of_the_local_model_with_tools_declared_greets_replies_and_fills_its_fields(
    worker_database: AsyncDatabase, client: RoomClient, tool_server: ToolServer
) -> None:
    """SmolLM2 will not call a tool; what matters is that declaring them breaks nothing: its
    server cannot call tools under a JSON schema, so the reply is plain text and the fields
    come from the extraction call."""
    tools = [*order_tools(tool_server), EndSessionTool()]
    # A short reply and no summary: what is judged is the wiring, and the tiny model's words
    # cost seconds each (its 256-token replies, then its summary, which the worker's drain
    # waited 5 s for when the module ended). The local model's summaries are judged in
    # test_text_sessions' first test.
    sales = await ConfigStore(worker_database).get(LOCAL_AGENT)
    short = sales.llm.model_copy(update={"max_tokens": 48})
    no_summary = SummarySpec(enabled=False)
    async with agent_changed(
        worker_database, LOCAL_AGENT, tools=tools, llm=short, summary=no_summary
    ):
        await client.join({"agent_id": LOCAL_AGENT, "user_id": "u-local-tools"})
        assert await client.next_transcript(0)  # the greeting
        await client.say("What plans do you have?")
        reply = await client.next_transcript(1, timeout=180)
        turn = await client.wait_for(
            lambda: next((t for t in client.data["agent-turn"] if t.get("fields")), None),
            180,
            "the turn's fields",
        )
    assert reply.strip()
    assert turn["fields"]["system_response"] == reply.strip()
    assert isinstance(turn["tool_calls"], list)
