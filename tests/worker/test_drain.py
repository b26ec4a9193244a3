"""SIGTERM drains: the worker takes no new rooms, finishes the live session, then exits, with
the session's summary and records written before it goes."""

import asyncio
import signal
from collections.abc import Iterator

import pytest
from livekit import rtc
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import (
    RunningWorker,
    agent_changed,
    launched_workers,
    wait_for_session_end,
)
from tests.worker.scripted_llm import REPLY, ScriptedLLM

pytestmark = pytest.mark.usefixtures("text_only_agents")


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    """A worker of its own: this module terminates it."""
    with launched_workers(endpoints, worker_database.name, tmp_path_factory, prefix="sb-drain") as (
        running,
    ):
        yield running


async def test_sigterm_finishes_the_live_session_before_exiting(
    client: RoomClient,
    worker: RunningWorker,
    worker_database: AsyncDatabase,
    endpoints: Endpoints,
    scripted: ScriptedLLM,
) -> None:
    """The scripted model answers: what is judged is the worker's lifecycle, not a reply."""
    async with agent_changed(worker_database, "support-agent-v1", llm=scripted.llm()):
        await client.join({"purpose": "support", "user_id": "u-drain"})
        await client.next_transcript(0)
        worker.process.send_signal(signal.SIGTERM)
        await client.wait_for(
            lambda: "draining worker" in worker.log_path.read_text(errors="replace"),
            30,
            "the worker to start draining",
        )
        assert worker.process.poll() is None, "a draining worker must wait for its live session"

        late = RoomClient(
            endpoints.livekit_url,
            endpoints.livekit_api_key,
            endpoints.livekit_api_secret,
            worker.agent_name,
        )
        agents_seen: list[str] = []  # watched until the worker is gone, not for a fixed time
        late.room.on(
            "participant_connected",
            lambda p: (
                p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
                and agents_seen.append(p.identity)
            ),
        )
        try:
            await late.join({"purpose": "support", "user_id": "u-late"})

            await client.say("Are you still there? My invoice looks wrong.")
            assert await client.next_transcript(1) == REPLY
            await client.leave()
            record = await wait_for_session_end(worker_database, client.room_name)
            assert record["summary"] == REPLY and record["turn_count"] == 1
            await asyncio.get_running_loop().run_in_executor(None, worker.process.wait, 60)
            assert worker.process.returncode is not None
            assert agents_seen == [] and late.agent_attributes() == {}, (
                "a draining worker must not take new rooms"
            )
        finally:
            await late.leave()
