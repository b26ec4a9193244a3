"""A real worker process (`python -m worker start`) on the real LiveKit server, FerretDB and
local LLM, serving a database seeded with the built-in agent types. One per test module."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack import REPO_ROOT, Endpoints
from devstack.services import reserve_port
from scripts.setup_agents import seed
from tests.worker.room_client import RoomClient

REGISTER_TIMEOUT_S = 90.0


@dataclass
class RunningWorker:
    agent_name: str
    database_name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    env: dict[str, str]

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def worker_env(endpoints: Endpoints, database_name: str, agent_name: str, tmp: Path) -> dict[str, str]:
    assert endpoints.local_llm_url, "the local model stack is not installed: run `make test`"
    return os.environ | endpoints.as_env() | {
        "MONGO_DB": database_name,
        "AGENT_NAME": agent_name,
        "WORKER_HTTP_PORT": "0",
        "PROMETHEUS_PORT": str(reserve_port(0, "metrics", "UNUSED")),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "SPOOL_DIR": str(tmp / "spool"),
        "ROUTING_RULES_TTL_S": "0",
        "MONGO_TIMEOUT_MS": "2000",
    }


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "start"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_registered(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if "registered worker" in text:
            return
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n{text[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"worker did not register in {REGISTER_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
async def worker_database(endpoints: Endpoints) -> AsyncIterator[AsyncDatabase]:
    name = f"worker_{uuid.uuid4().hex[:10]}"
    client = open_client(endpoints.mongo_uri)
    database = client[name]
    store = ConfigStore(database)
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    await seed(store, configs)
    await RulesStore(database).ensure_indexes()
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    tmp = tmp_path_factory.mktemp("worker")
    agent_name = f"sb-test-{uuid.uuid4().hex[:8]}"
    env = worker_env(endpoints, worker_database.name, agent_name, tmp)
    log_path = tmp / "worker.log"
    process = start_worker(env, log_path)
    running = RunningWorker(agent_name, worker_database.name, process, log_path, int(env["PROMETHEUS_PORT"]), env)
    try:
        wait_until_registered(process, log_path)
        yield running
    finally:
        stop_worker(process)


@pytest.fixture
async def client(endpoints: Endpoints, worker: RunningWorker) -> AsyncIterator[RoomClient]:
    room_client = RoomClient(
        endpoints.livekit_url, endpoints.livekit_api_key, endpoints.livekit_api_secret, worker.agent_name
    )
    try:
        yield room_client
    finally:
        await room_client.leave()
