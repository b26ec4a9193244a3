"""`LOCAL_LLM_URL` + `LOCAL_LLM_MODEL`: every `local` agent type runs on the operator's own
OpenAI-compatible server and model (Ollama, vLLM, llama.cpp), with no config edited.

The server here is the scripted endpoint, which records each request it gets: the model a
real Ollama would have been asked for is in the request body.
"""

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import launched_workers, wait_for_session_end
from tests.worker.scripted_llm import REPLY, ScriptedLLM

pytestmark = pytest.mark.usefixtures("text_only_agents")

OLLAMA_MODEL = "llama3.2:3b"


async def test_every_request_of_a_local_type_names_the_operators_model(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    scripted: ScriptedLLM,
) -> None:
    env = {"LOCAL_LLM_URL": scripted.url, "LOCAL_LLM_MODEL": OLLAMA_MODEL}
    with launched_workers(
        endpoints, worker_database.name, tmp_path_factory, prefix="sb-own-llm", extra_env=env
    ) as (worker,):
        client = RoomClient(
            endpoints.livekit_url,
            endpoints.livekit_api_key,
            endpoints.livekit_api_secret,
            worker.agent_name,
        )
        try:
            await client.join({"purpose": "sales", "user_id": "u-own-model"})
            await client.next_transcript(0)  # the greeting
            await client.say("What plans do you have?")
            assert (await client.next_transcript(1)).strip() == REPLY
            await client.leave()
            record = await wait_for_session_end(worker_database, client.room_name)
        finally:
            await client.leave()
    assert record["summary"] == REPLY  # the closing summary went to the same server
    models = [request["model"] for request in scripted.requests]
    assert len(models) >= 2 and set(models) == {
        OLLAMA_MODEL
    }  # the reply (with its fields) and the summary
