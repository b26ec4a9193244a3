"""One worker for the whole channels package (a real worker on the scripted endpoint, a database
seeded with the built-in types, package-scoped as in tests/evals: a worker start costs ~6 s),
and the channels service run in the test's own event loop (real HTTP on a free port).

`embedded-chat` is the support type on the embedded model (its `base_url` names the devstack's
SmolLM2 server, which LOCAL_LLM_URL, pointed at the scripted endpoint, does not override): the
one conversation per channel that shows the real model path works. The scripted endpoint
answers everything else, so replies and fields are exact.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import ChannelBinding
from agent_configs.database import open_client
from agent_configs.egress import EgressPolicy
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import DEFAULT_RULES, RulesStore
from agent_configs.store import ConfigStore
from channels.service import ChannelService
from channels.settings import ChannelSettings
from devstack import Endpoints
from scripts.setup_agents import seed
from tests.worker.conftest import RunningWorker, launched_workers
from tests.worker.scripted_llm import ScriptedLLM

EMBEDDED_TYPE = "embedded-chat"


@pytest.fixture(scope="package")
async def channels_database(endpoints: Endpoints) -> AsyncIterator[AsyncDatabase]:
    name = f"channels_{uuid.uuid4().hex[:10]}"
    client = open_client(endpoints.mongo_uri)
    database = client[name]
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    store = ConfigStore(database)
    await seed(store, configs)
    support = next(c for c in configs if c.agent_id == "support-agent-v1")
    assert endpoints.local_llm_url, "the devstack's embedded model is needed"
    # A one-line prompt, two turn fields, short replies and no closing summary: the turn under
    # test costs the model ~2 s instead of ~6 s (560 prompt tokens took 3.6 s to read on 2 busy
    # cores, and the five fields' JSON 2.3 s to write).
    embedded_llm = support.llm.model_copy(
        update={"base_url": endpoints.local_llm_url, "max_tokens": 32}
    )
    two_fields = support.turn_schema.fields[:2]  # the reply and one enum: fields still filled
    embedded = support.model_copy(
        update={"agent_id": EMBEDDED_TYPE, "name": "Embedded chat", "purposes": ["embedded"]}
        | {"llm": embedded_llm, "greeting": None}
        | {"summary": support.summary.model_copy(update={"enabled": False})}
        | {"instructions": "You are a support agent. Answer in one short sentence."}
        | {"turn_schema": support.turn_schema.model_copy(update={"fields": two_fields})}
    )
    await store.create(embedded)
    rules = DEFAULT_RULES.definition()
    explicit = rules["chain"][0]["params"]["allowed_agent_ids"]
    explicit.append(EMBEDDED_TYPE)  # a binding may name it, as a frontend may name the built-ins
    await RulesStore(database).save(rules, expected_version=0)
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="package")
async def channels_llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as endpoint:
        yield endpoint


@pytest.fixture(scope="package")
def channels_worker(
    endpoints: Endpoints,
    channels_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    channels_llm: ScriptedLLM,
) -> Iterator[RunningWorker]:
    with launched_workers(
        endpoints,
        channels_database.name,
        tmp_path_factory,
        extra_env={"LOCAL_LLM_URL": channels_llm.url},
    ) as (running,):
        yield running


def channel_settings(
    endpoints: Endpoints, worker: RunningWorker, database: AsyncDatabase, spool: Path
) -> ChannelSettings:
    return ChannelSettings(
        mongo_uri=endpoints.mongo_uri,
        mongo_db=database.name,
        livekit_url=endpoints.livekit_url,
        livekit_api_key=endpoints.livekit_api_key,
        livekit_api_secret=endpoints.livekit_api_secret,
        agent_name=worker.agent_name,
        channels_port=0,
        channels_reload_s=60,  # tests call reload() when they change a binding
        channels_reply_timeout_s=30,
        channels_join_timeout_s=30,
        channels_spool_dir=spool,
        switchboard_dev_mode=True,
    )


@pytest.fixture
async def channel_service(
    endpoints: Endpoints,
    channels_worker: RunningWorker,
    channels_database: AsyncDatabase,
    tmp_path: Path,
) -> AsyncIterator[ChannelService]:
    """The channels service on the package's worker; the bindings a test adds are removed
    after it (the package shares its database)."""
    settings = channel_settings(endpoints, channels_worker, channels_database, tmp_path / "spool")
    service = ChannelService(settings, channels_database, EgressPolicy())
    async with service:
        yield service
    await channels_database["channel_bindings"].delete_many({})
    await sessions_ended(channels_database)


async def sessions_ended(database: AsyncDatabase, timeout_s: float = 20.0) -> None:
    """Until every channel session has ended (its summary and records written). The worker
    fixture stops its worker synchronously, which blocks this event loop and with it the
    scripted endpoint: a session still ending then waits 30 s for its summary in vain."""
    deadline = time.monotonic() + timeout_s
    live = {"channel": {"$exists": True}, "status": {"$nin": ["ended", "refused", "aborted"]}}
    while await database["sessions"].count_documents(live):
        if time.monotonic() > deadline:
            raise AssertionError("channel sessions did not end after the service closed them")
        await asyncio.sleep(0.1)


async def add_binding(service: ChannelService, binding: ChannelBinding) -> ChannelBinding:
    """Stores the binding and has the service pick it up now."""
    await service.context.database["channel_bindings"].replace_one(
        {"_id": binding.binding_id}, binding.document(), upsert=True
    )
    await service.reload()
    return binding
