"""A room that arrives while the database is down still gets an agent.

The worker serves it from the last-known good configs and rules its earlier jobs read (a
snapshot on local disk: job processes live for one session); its records are buffered and
reach the database when it is back. A worker that never saw the database tells the user
plainly and records the refusal once the database returns.

The shared FerretDB serves every other test, so this module runs a FerretDB of its own (own
port, own data dir) and stops and starts it. The model is the scripted endpoint
(tests/worker/scripted_llm.py): what is checked is the database's part, and the tiny local
model's replies and summaries took 12 s of the module's 39 s (measured on 2 cores)."""

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack import DEFAULT_ROOT, Endpoints
from devstack.binaries import FERRETDB
from devstack.frontend import RoomClient
from scripts.setup_agents import seed
from tests.worker.conftest import (
    RunningWorker,
    assert_the_model_answered,
    launched_workers,
    wait_for_session_end,
)
from tests.worker.scripted_llm import ScriptedLLM
from worker.server import NO_DATABASE_MESSAGE


class OwnFerretDB:
    """A FerretDB process this module may stop: same port and data dir across restarts."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / "ferretdb.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(DEFAULT_ROOT / "bin" / FERRETDB.name),
                "--listen-addr",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.process.poll() is None, "FerretDB exited at start"
            time.sleep(0.1)
        raise AssertionError("FerretDB did not listen")

    def stop(self) -> None:
        """Killed, as a crashed or unplugged database goes: asked to stop (SIGTERM), FerretDB
        waits 3 s for its open connections (measured; the workers' stay open), which each
        stop cost a test while the clients saw the same thing, their connections closed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.process = None


@pytest.fixture(scope="module")
def ferretdb(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnFerretDB]:
    del endpoints  # the devstack builds the binaries first
    own = OwnFerretDB(tmp_path_factory.mktemp("own-ferretdb") / "data")
    own.start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
async def own_database(ferretdb: OwnFerretDB) -> AsyncIterator[AsyncDatabase]:
    """The built-in agent types, text only (no STT/TTS/VAD: the test chats)."""
    client = open_client(ferretdb.uri)
    database = client[f"dbdown_{uuid.uuid4().hex[:8]}"]
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
        await client.close()


def new_client(endpoints: Endpoints, worker: RunningWorker) -> RoomClient:
    return RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )


async def in_thread(function, *args):
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def test_a_room_arriving_while_the_database_is_down_is_served_and_recorded_once_it_is_back(
    endpoints: Endpoints,
    ferretdb: OwnFerretDB,
    own_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    scripted: ScriptedLLM,
) -> None:
    with launched_workers(
        endpoints,
        own_database.name,
        tmp_path_factory,
        prefix="sb-dbdown",
        extra_env={"MONGO_URI": ferretdb.uri, "LOCAL_LLM_URL": scripted.url},
    ) as (worker,):
        before = new_client(endpoints, worker)  # the worker reads the catalog once, DB up
        try:
            await before.join({"purpose": "support", "user_id": "u-before"})
            assert (await before.routed_agent()) == ("support-agent-v1", "purpose")
        finally:
            await before.leave()
        # Its end is recorded after the job's housekeeping, which snapshots every active type.
        await wait_for_session_end(own_database, before.room_name, timeout=60)

        await in_thread(ferretdb.stop)
        during = new_client(endpoints, worker)
        try:
            loop = asyncio.get_running_loop()
            arrived = loop.time()
            await during.join({"purpose": "sales", "user_id": "u-during"})
            assert (await during.routed_agent(timeout=60)) == ("sales-agent-v1", "purpose")
            print(
                f"database down: agent routed {loop.time() - arrived:.1f}s after the room arrived"
            )
            assert during.agent_attributes()["switchboard.catalog"] == "last-known"
            await during.wait_for(lambda: len(during.transcripts) >= 1, 60, "the greeting")
            await during.say("Hello, what plans do you sell?")
            assert_the_model_answered(await during.next_turn(0, timeout=120))

            await in_thread(ferretdb.start)
            back = loop.time()
        finally:
            await during.leave()
        record = await wait_for_session_end(own_database, during.room_name, timeout=120)
        print(f"database back: session record stored {loop.time() - back:.1f}s later")
        assert record["agent_id"] == "sales-agent-v1" and record.get("catalog") == "last-known"
        turns = await own_database["turns"].count_documents({"session_id": record["session_id"]})
        assert turns >= 1, "the turn answered during the outage was not stored"


async def test_a_worker_that_never_saw_the_database_tells_the_user_and_records_the_refusal_later(
    endpoints: Endpoints,
    ferretdb: OwnFerretDB,
    own_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    scripted: ScriptedLLM,
) -> None:
    await in_thread(ferretdb.stop)
    try:
        with launched_workers(  # a fresh worker: no catalog snapshot yet
            endpoints,
            own_database.name,
            tmp_path_factory,
            prefix="sb-nodb",
            extra_env={"MONGO_URI": ferretdb.uri, "LOCAL_LLM_URL": scripted.url},
        ) as (worker,):
            refused = new_client(endpoints, worker)
            try:
                await refused.join({"purpose": "support", "user_id": "u-refused"})
                await refused.wait_for(
                    lambda: NO_DATABASE_MESSAGE in refused.transcripts, 60, "the refusal message"
                )
            finally:
                await refused.leave()

            await in_thread(ferretdb.start)
            probe = new_client(endpoints, worker)  # a job start replays the spooled records
            try:
                await probe.join({"purpose": "support", "user_id": "u-probe"})
                assert (await probe.routed_agent()) == ("support-agent-v1", "purpose")
            finally:
                await probe.leave()
            record = await wait_for_session_end(own_database, refused.room_name, timeout=60)
            assert record["status"] == "refused" and record["reason"] == "database unavailable"
    finally:
        if ferretdb.process is None:
            await in_thread(ferretdb.start)
