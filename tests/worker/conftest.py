"""A real worker process (`python -m worker start`) on the real LiveKit server, FerretDB and
local LLM, serving a database seeded with the built-in agent types. One per test module."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit import api, rtc
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.routing.rules import RulesStore
from agent_configs.store import ConfigStore
from devstack import REPO_ROOT, Endpoints
from devstack.frontend import RoomClient
from scripts.setup_agents import seed
from tests.worker.scripted_llm import ScriptedLLM

REGISTER_TIMEOUT_S = 90.0


@dataclass
class RunningWorker:
    agent_name: str
    database_name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    @property
    def metrics_port(self) -> int:
        """Chosen by the worker itself (PROMETHEUS_PORT=0): a port picked for it beforehand
        can be taken by another process before the worker binds it."""
        match = re.search(
            r"Prometheus metrics exposed at http://[^:]*:(\d+)/", self.log_path.read_text()
        )
        assert match, "the worker did not log its metrics port"
        return int(match.group(1))

    def log_tail(self, lines: int = 60) -> str:
        noise = ("InsecureKeyLengthWarning", "return self._jws.encode")
        kept = [
            ln
            for ln in self.log_path.read_text(errors="replace").splitlines()
            if not any(n in ln for n in noise)
        ]
        return "\n".join(line[:600] for line in kept[-lines:])


def worker_env(
    endpoints: Endpoints, database_name: str, agent_name: str, tmp: Path
) -> dict[str, str]:
    assert endpoints.local_llm_url, "the local model stack is not installed: run `make test`"
    return (
        os.environ
        | endpoints.as_env()
        | {
            "MONGO_DB": database_name,
            "AGENT_NAME": agent_name,
            "WORKER_HTTP_PORT": "0",
            "PROMETHEUS_PORT": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
            "SPOOL_DIR": str(tmp / "spool"),
            # Tests open rooms in quick succession; ended jobs hold a slot until their process
            # exits, and LiveKit drops a dispatch that finds every worker full.
            "WORKER_MAX_SESSIONS": "32",
            "MONGO_TIMEOUT_MS": "2000",
        }
    )


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
    raise AssertionError(
        f"worker did not register in {REGISTER_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}"
    )


def registered_id(replica: RunningWorker) -> str:
    """The id LiveKit gave the worker when it registered (session records carry it)."""
    match = re.search(r'"registered worker".*?"id": "(AW_\w+)"', replica.log_path.read_text())
    assert match, "worker id not in the log"
    return match.group(1)


def stop_worker(
    process: subprocess.Popen[bytes], timeout: float = 60.0, *, signalled: bool = False
) -> None:
    """SIGTERM (unless `signalled` already), the drain, then SIGKILL to the group past `timeout`."""
    if process.poll() is None:
        if not signalled:
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


@contextmanager
def launched_workers(
    endpoints: Endpoints,
    database_name: str,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    prefix: str = "sb-test",
    replicas: int = 1,
    extra_env: dict[str, str] | None = None,
    replica_env: Callable[[int], dict[str, str]] | None = None,
) -> Iterator[list[RunningWorker]]:
    """`replicas` worker processes sharing one agent name, registered before the block runs.
    `replica_env(i)` is what replica i has of its own (tests/scale: the LiveKit node it joins)."""
    agent_name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    started: list[RunningWorker] = []
    try:
        for index in range(replicas):
            tmp = tmp_path_factory.mktemp(prefix)
            env = worker_env(endpoints, database_name, agent_name, tmp) | (extra_env or {})
            env |= replica_env(index) if replica_env else {}
            log_path = tmp / "worker.log"
            process = start_worker(env, log_path)
            started.append(RunningWorker(agent_name, database_name, process, log_path, env))
        for running in started:
            wait_until_registered(running.process, running.log_path)
        yield started
    finally:
        # All drain at once: one by one, each replica's drain waited for the one before.
        for running in started:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        for running in started:
            stop_worker(running.process, signalled=True)


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    with launched_workers(endpoints, worker_database.name, tmp_path_factory) as (running,):
        yield running


@pytest.fixture(scope="module")
async def module_llm() -> AsyncIterator[ScriptedLLM]:
    """A scripted endpoint (tests/worker/scripted_llm.py) for a whole module's worker."""
    async with ScriptedLLM() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def scripted_worker(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    tmp_path_factory: pytest.TempPathFactory,
    module_llm: ScriptedLLM,
) -> Iterator[RunningWorker]:
    """The module's worker with every `local` type asking `module_llm` (LOCAL_LLM_URL), for
    modules whose checks do not depend on what a model answers: the tiny local model's
    replies and summaries cost seconds per session (bounded inputs: 62 -> 41 s). A module
    opts in with a module-scoped `worker` fixture that returns this one."""
    with launched_workers(
        endpoints,
        worker_database.name,
        tmp_path_factory,
        extra_env={"LOCAL_LLM_URL": module_llm.url},
    ) as (running,):
        yield running


@pytest.fixture(scope="module")
async def text_only_agents(worker_database: AsyncDatabase) -> None:
    """Chat-only agent types: no STT, TTS or VAD in the session (voice has its own module)."""
    store = ConfigStore(worker_database)
    for config in (await store.list_agents()).items:
        text_only = config.model_copy(
            update={"modalities": ["text"], "stt": None, "tts": None, "vad": None}
        )
        await store.update(text_only, expected_version=config.version)


async def wait_for_session_end(
    database: AsyncDatabase, room: str, timeout: float = 120.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = await database["sessions"].find_one(
            {"room": room, "status": {"$in": ["ended", "refused"]}}
        )
        if record is not None:
            return record
        # A read costs FerretDB ~2 ms; the record lands in another process with no signal to
        # await, and a half-second poll cost each ended session 0.25 s on average.
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ended session record for room {room}")


async def jobs_of(lk: api.LiveKitAPI, room: str) -> int:
    """The jobs LiveKit placed for `room`: its dispatch records one per placement, so a room
    sent to two workers shows two, without waiting to see whether a second agent joins."""
    return sum(len(d.state.jobs) for d in await lk.agent_dispatch.list_dispatch(room))


def agents_in(client: RoomClient) -> int:
    """Agent participants in the client's room, as the client sees them."""
    return sum(
        1
        for p in client.room.remote_participants.values()
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    )


def assert_the_model_answered(turn: dict[str, Any]) -> None:
    """What an `agent-turn` answered by the embedded model is, whatever its words: `ok`;
    `failed` without an `error_kind` when it replied but its fields did not validate (the tiny
    model can loop until its token cap; seen in CI); or `failed` with `empty_reply` when it
    answered only blanks (its grammar allows any non-empty string; seen in CI). Only a reply
    that never came carries another kind: `llm_unavailable`, `llm_timeout` or `llm_error`."""
    assert turn.get("error_kind") in (None, "empty_reply"), turn


def said_words(turn: dict[str, Any]) -> bool:
    """An `agent-turn` payload of a turn that went well (only a failed one has a status)."""
    return turn.get("status", "ok") == "ok"


@pytest.fixture(autouse=True)
def worker_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed end-to-end test shows what the worker logged, not just what the client saw."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "worker" in request.fixturenames:
        running: RunningWorker = request.getfixturevalue("worker")
        print(f"--- worker log ({running.log_path}) ---\n{running.log_tail(80)}")


@pytest.fixture
async def client(endpoints: Endpoints, worker: RunningWorker) -> AsyncIterator[RoomClient]:
    room_client = RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )
    try:
        yield room_client
    finally:
        await room_client.leave()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedLLM]:
    """A scripted OpenAI-compatible endpoint on loopback (tests/worker/scripted_llm.py), for
    what the tiny local model cannot be relied on to do (tool calls, failures on cue)."""
    async with ScriptedLLM() as endpoint:
        yield endpoint


async def update_agent(database: AsyncDatabase, agent_id: str, **changes: object) -> None:
    store = ConfigStore(database)
    current = await store.get(agent_id)
    await store.update(current.model_copy(update=changes), expected_version=current.version)


@asynccontextmanager
async def agent_changed(
    database: AsyncDatabase, agent_id: str, **changes: object
) -> AsyncIterator[None]:
    """A module's tests share the worker and its agent types: put them back afterwards."""
    before = await ConfigStore(database).get(agent_id)
    await update_agent(database, agent_id, **changes)
    try:
        yield
    finally:
        await update_agent(database, agent_id, **{name: getattr(before, name) for name in changes})
