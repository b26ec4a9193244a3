"""What a session asks the model to generate: each turn its reply and fields, as compact JSON
on the embedded model, in one request; at the end one summary, capped by the type's config
(issue 18's Tokens target; bench/tokens.py measures it over every built-in type)."""

import asyncio
import json

import pytest
from livekit.agents import AgentSession
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.files import DEFAULTS_DIR, load_config_file
from agent_configs.models import AgentConfig, SummarySpec
from bench.llm_recorder import RecordingProxy
from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import RunningWorker, agent_changed, wait_for_session_end
from tests.worker.scripted_llm import ScriptedLLM
from worker.session import ConfiguredAgent, build_models
from worker.settings import WorkerSettings

pytestmark = pytest.mark.usefixtures("text_only_agents")

SUPPORT = "support-agent-v1"


def compact(document: object) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


async def test_a_reply_with_its_fields_on_the_embedded_model_is_generated_as_compact_json(
    endpoints: Endpoints,
) -> None:
    """llama.cpp's grammar for a `response_format` lets the model write newlines and indents
    between the JSON's tokens, and SmolLM2 does: before the worker sent the embedded server a
    compact grammar, this reply came as `{\\n  "system_response": ...`. The request goes from
    the worker's own code through a recording proxy to the embedded server."""
    if not (endpoints.local_llm_url and endpoints.local_llm_embedded):
        pytest.skip("the embedded model server is not running in this stack")
    config = load_config_file(DEFAULTS_DIR / "support.yaml")
    assert isinstance(config, AgentConfig)
    config = config.model_copy(update={"modalities": ["text"]})
    proxy = RecordingProxy(endpoints.local_llm_url).start()
    try:
        settings = WorkerSettings(local_llm_url=proxy.url("turn"), local_llm_embedded=True)
        agent = ConfiguredAgent(config, await build_models(config, settings, None), [])
        async with AgentSession() as session:
            await session.start(agent)
            await session.run(user_input="My login stopped working this morning.")
            assert agent.streamed_turn is not None
            turn = await asyncio.wait_for(agent.streamed_turn, 60)
    finally:
        proxy.stop()
    assert turn.fields is not None, turn.error
    (reply,) = proxy.exchanges
    document = json.loads(reply.content)
    assert list(document) == config.turn_schema.field_names
    assert reply.content == compact(document)


async def test_a_message_costs_one_request_for_the_reply_and_its_fields_and_the_summary_is_capped_by_its_config(
    endpoints: Endpoints,
    worker: RunningWorker,
    worker_database: AsyncDatabase,
    scripted: ScriptedLLM,
) -> None:
    async with agent_changed(
        worker_database, SUPPORT, llm=scripted.llm(), summary=SummarySpec(max_tokens=40)
    ):
        client = RoomClient(
            endpoints.livekit_url,
            endpoints.livekit_api_key,
            endpoints.livekit_api_secret,
            worker.agent_name,
        )
        try:
            await client.join({"agent_id": SUPPORT, "user_id": "u-turn-tokens"})
            await client.next_transcript(0)  # the greeting
            await client.say("My login is not working since this morning.")
            await client.next_transcript(1)
            await client.leave()
            record = await wait_for_session_end(worker_database, client.room_name)
        finally:
            await client.leave()
    assert record["summary"]
    replies = [r for r in scripted.requests if r.get("stream")]
    assert len(replies) == 1 and "response_format" in replies[0]  # the fields came with it
    others = [r for r in scripted.requests if not r.get("stream")]
    assert [r["messages"][0]["content"][:21] for r in others] == ["You write short notes"]
    assert others[0]["max_tokens"] == 40
