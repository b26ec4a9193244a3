"""No room without an agent. WORKER_MAX_SESSIONS means what it says: a worker of N takes
exactly N rooms; and a room LiveKit gave up on (no worker free) is dispatched again by the
admin API once capacity frees, never twice.

livekit-server offers a job only to a worker whose last reported load is below its
`agents.target_load` (0.7); the worker reported `sessions / N`, so a worker of 4 stopped at
3 rooms (3/4 = 0.75) and the 4th room found no worker at all."""

import asyncio
import re
import urllib.request
from collections.abc import Iterator

import pytest
from livekit import api, rtc
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.admin_api.conftest import admin_settings, running_app
from tests.worker.conftest import RunningWorker, jobs_of, launched_workers

pytestmark = pytest.mark.usefixtures("text_only_agents")
MAX_SESSIONS = 4  # with 3 the old report (2/3 < 0.7) happened to let the 3rd room in
STATUS_INTERVAL_S = 2.5  # livekit-agents sends its load to the server this often


@pytest.fixture(scope="module")
def worker(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    with launched_workers(
        endpoints,
        worker_database.name,
        tmp_path_factory,
        prefix="sb-cap",
        extra_env={"WORKER_MAX_SESSIONS": str(MAX_SESSIONS)},
    ) as (running,):
        yield running


def new_client(endpoints: Endpoints, worker: RunningWorker) -> RoomClient:
    return RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        worker.agent_name,
    )


def agents_in(client: RoomClient) -> int:
    return sum(
        1
        for p in client.room.remote_participants.values()
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    )


def reported_load(worker: RunningWorker) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5
    ) as response:
        text = response.read().decode()
    match = re.search(r"^lk_agents_worker_load\{[^}]*\} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else -1.0


async def load_reported(worker: RunningWorker, sessions: int, timeout: float = 30.0) -> float:
    """Until the worker computed the load of `sessions` running sessions, plus one status
    interval so livekit-server has it too: the next room is then offered (or not) by the
    load a steady worker reports, not by a stale one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    expected = 0.7 * sessions / MAX_SESSIONS
    while abs((load := await loop.run_in_executor(None, reported_load, worker)) - expected) > 1e-6:
        assert loop.time() < deadline, f"load stayed {load}, expected {expected}"
        await asyncio.sleep(0.2)
    await asyncio.sleep(STATUS_INTERVAL_S + 0.5)
    return load


async def test_a_worker_of_four_serves_four_rooms_not_a_fifth_and_the_dropped_rooms_are_dispatched_again_once_capacity_frees_and_none_twice(
    endpoints: Endpoints, worker: RunningWorker, worker_database: AsyncDatabase
) -> None:
    """One scenario, as a full worker lives it: the four rooms it serves and the fifth it is
    not sent are the served and the first waiting room of the re-dispatch (two tests started
    the same four sessions and waited for the worker's load twice over: 15 s more)."""
    clients = [new_client(endpoints, worker) for _ in range(MAX_SESSIONS + 2)]
    served, waiting = clients[:MAX_SESSIONS], clients[MAX_SESSIONS:]
    extra = waiting[0]
    try:
        for n, client in enumerate(served):
            if n == MAX_SESSIONS - 1:  # a stale report is lower: only the last room needs
                await load_reported(worker, n)  # the load of 3 of 4 (once 0.75, not offered)
            await client.join({"purpose": "support", "user_id": f"u-cap-{n}"})
            await client.routed_agent(timeout=60)
        assert await load_reported(worker, MAX_SESSIONS) == pytest.approx(0.7)

        await extra.join({"purpose": "support", "user_id": "u-cap-extra"})
        await rooms_livekit_dropped_are_dispatched_again(
            endpoints, worker, worker_database, served, waiting
        )
    finally:
        await asyncio.gather(*(c.leave() for c in clients))


def livekit_api(endpoints: Endpoints) -> api.LiveKitAPI:
    return api.LiveKitAPI(
        endpoints.livekit_url, endpoints.livekit_api_key, endpoints.livekit_api_secret
    )


async def session_rooms(database: AsyncDatabase, rooms: list[str]) -> list[str]:
    return sorted(
        r["room"] for r in await database["sessions"].find({"room": {"$in": rooms}}).to_list(None)
    )


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def rooms_livekit_dropped_are_dispatched_again(
    endpoints: Endpoints,
    worker: RunningWorker,
    worker_database: AsyncDatabase,
    served: list[RoomClient],
    waiting: list[RoomClient],
) -> None:
    """With `served` holding every slot of the worker and the first of `waiting` just in its
    room: no waiting room is sent to the full worker, the admin API's sweep tells them they
    wait, and dispatches them again once two sessions end, each once."""
    loop = asyncio.get_running_loop()
    watch_until = loop.time() + 6
    settings = admin_settings(
        endpoints,
        worker_database.name,
        agent_name=worker.agent_name,
        admin_api_redispatch_after_s=3.0,
        admin_api_redispatch_interval_s=0.5,
        admin_api_redispatch_backoff_s=2.0,
        admin_api_redispatch_backoff_max_s=4.0,
    )
    async with running_app(settings) as (_, admin):
        try:
            for n, client in enumerate(waiting[1:]):
                await client.join({"purpose": "sales", "user_id": f"u-wait-{n}"})
            # Absence has no event: LiveKit records a job in the room's dispatch once it placed
            # one, so the dispatches are watched for a while (longer than a placement takes,
            # ~1 s), and meanwhile the sweep tells the rooms they wait (LiveKit dropped their
            # dispatch: the worker is full); its dispatches again find no worker either. (The
            # watch once ran alone before the sweep started: 6 s more.)
            deadline = loop.time() + 30
            async with livekit_api(endpoints) as lk:
                while loop.time() < watch_until or not all(
                    c.data.get("switchboard.waiting") for c in waiting
                ):
                    assert loop.time() < deadline, f"no waiting packet: {[c.data for c in waiting]}"
                    for client in waiting:
                        assert await jobs_of(lk, client.room_name) == 0, (
                            "a full worker was sent a 5th room"
                        )
                    await asyncio.sleep(0.5)
            assert all(agents_in(c) == 0 for c in waiting)
            assert [agents_in(c) for c in served] == [1] * MAX_SESSIONS
            notice = waiting[0].data["switchboard.waiting"][0]
            assert notice["state"] == "waiting_for_agent" and notice["attempt"] >= 1

            freed_at = loop.time()
            await asyncio.gather(*(c.leave() for c in served[:2]))
            await asyncio.gather(*(c.routed_agent(timeout=90) for c in waiting))
            print(f"dropped rooms served {loop.time() - freed_at:.1f}s after two sessions ended")

            # A sweep after every room is served counts none waiting; then nothing more can come.
            async def waiting_gauge() -> float:
                text = (await admin.get("/metrics")).text
                return metric(text, "switchboard_admin_rooms_waiting_for_agent")

            deadline = loop.time() + 30
            while await waiting_gauge() != 0:
                assert loop.time() < deadline, "the sweep still counts rooms waiting"
                await asyncio.sleep(0.5)
            text = (await admin.get("/metrics")).text
            assert metric(text, "switchboard_admin_redispatches_total") >= len(waiting)
            live = served[2:] + waiting
            assert [agents_in(c) for c in live] == [1] * len(live)
            async with livekit_api(endpoints) as lk:
                assert [await jobs_of(lk, c.room_name) for c in live] == [1] * len(live), (
                    "a room dispatched twice"
                )
            rooms = sorted(c.room_name for c in live)
            deadline = loop.time() + 30
            while (recorded := await session_rooms(worker_database, rooms)) != rooms:
                assert loop.time() < deadline, f"one session record per room: {recorded} != {rooms}"
                await asyncio.sleep(0.5)
        finally:
            await asyncio.gather(*(c.leave() for c in served + waiting))
