"""One worker for the whole evals package: tests/worker's fixtures (a real worker on a scripted
endpoint, a database seeded with the built-in types), package-scoped here, because starting a
worker costs each module ~6 s. Modules share the agent types: a test that edits one puts it back
(tests/worker/conftest.py `agent_changed`) and keeps to its own suites."""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack import Endpoints
from evals.runner import Stack
from scripts.setup_agents import seed
from tests.worker.conftest import RunningWorker, launched_workers
from tests.worker.scripted_llm import ScriptedLLM


@pytest.fixture(scope="package")
async def worker_database(endpoints: Endpoints) -> AsyncIterator[AsyncDatabase]:
    name = f"evals_{uuid.uuid4().hex[:10]}"
    client = open_client(endpoints.mongo_uri)
    database = client[name]
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    await seed(ConfigStore(database), configs)
    await RulesStore(database).ensure_indexes()
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="package")
async def module_llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as endpoint:
        yield endpoint


@pytest.fixture(scope="package")
def scripted_worker(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    module_llm: ScriptedLLM,
) -> Iterator[RunningWorker]:
    """Every `local` type asks `module_llm` (LOCAL_LLM_URL), as tests/worker's scripted_worker."""
    with launched_workers(
        endpoints,
        worker_database.name,
        tmp_path_factory,
        extra_env={"LOCAL_LLM_URL": module_llm.url},
    ) as (running,):
        yield running


def stack_of(endpoints: Endpoints, worker: RunningWorker, **more: Any) -> Stack:
    """Where the package's runs go: its worker, with turn and join timeouts a stuck test
    reaches in half a minute instead of the runner's defaults."""
    return Stack(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
        turn_timeout_s=30,
        join_timeout_s=30,
        **more,
    )
