"""A LiveKit cluster on loopback for `make scale`: Redis (Debian's redis-server, unpacked into
.devstack), two livekit-server nodes sharing it (LiveKit's multi-node mode), FerretDB, the
scripted model endpoint, and four Switchboard workers, two registered with each node.

One cluster per test module: the node-loss module stops a node. The model is the scripted
endpoint (tests/worker/scripted_llm.py), which answers at once: on 2 cores the CPU model
would be the bottleneck, and what is measured here is placement, not replies.
"""

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack import DEFAULT_ROOT, Devstack, Endpoints
from scripts.setup_agents import seed
from tests.scale.cluster import ClusterWorker
from tests.worker.conftest import launched_workers, registered_id
from tests.worker.scripted_llm import ScriptedLLM

NODES = 2
WORKERS = 4
WORKER_ENV = {
    # A killed worker's sessions are found stale after 12 s of silence, not the default 60 s.
    # Not less: with 25 rooms starting at once on 2 cores, FerretDB answered a beat in over
    # a second at times, and at 1 s beats and 4 s of silence live sessions were swept.
    "SESSION_HEARTBEAT_S": "2",
    "SESSION_STALE_AFTER_S": "12",
    # A job goes to one node's workers and is dropped when they are full, whatever the other
    # node's have (README, Multi-node): the two workers of either node take a whole burst of
    # 25, plus the job processes of the burst before that have not exited yet.
    "WORKER_MAX_SESSIONS": "25",
}
OWN_CLUSTER = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
"""These tests stop nodes of the cluster they start: a LIVEKIT_URL of the environment is
never theirs to use."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    environ = {k: v for k, v in os.environ.items() if k not in OWN_CLUSTER}
    with Devstack(
        DEFAULT_ROOT,
        run_dir=tmp_path_factory.mktemp("cluster"),
        llm_port=None,
        livekit_nodes=NODES,
        environ=environ,
    ) as running:
        assert len(running.livekit_nodes) == NODES
        yield running


@pytest.fixture(scope="module")
async def scripted() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def endpoints(cluster: Endpoints, scripted: ScriptedLLM) -> Endpoints:
    """The cluster as the workers see it: every `local` model is the scripted endpoint."""
    return dataclasses.replace(cluster, local_llm_url=scripted.url)


@pytest.fixture(scope="module")
async def cluster_database(endpoints: Endpoints) -> AsyncIterator[AsyncDatabase]:
    """The built-in agent types, text only (no speech models loaded in 100 job processes)."""
    name = f"scale_{uuid.uuid4().hex[:10]}"
    client = open_client(endpoints.mongo_uri)
    database = client[name]
    store = ConfigStore(database)
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    await seed(store, configs)
    await RulesStore(database).ensure_indexes()
    for config in (await store.list_agents()).items:
        text_only = config.model_copy(
            update={"modalities": ["text"], "stt": None, "tts": None, "vad": None}
        )
        await store.update(text_only, expected_version=config.version)
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="module")
def workers(
    endpoints: Endpoints,
    cluster_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[ClusterWorker]]:
    """Four workers under one agent name; worker i registers with node i % 2."""
    nodes = endpoints.livekit_nodes
    with launched_workers(
        endpoints,
        cluster_database.name,
        tmp_path_factory,
        prefix="sb-cluster",
        replicas=WORKERS,
        extra_env=WORKER_ENV,
        replica_env=lambda i: {"LIVEKIT_URL": nodes[i % NODES].url},
    ) as started:
        yield [
            ClusterWorker(running, nodes[i % NODES], registered_id(running))
            for i, running in enumerate(started)
        ]
