"""Horizontal scaling on one LiveKit server: three worker processes, as three replicas would
run. Rooms spread across them, each gets exactly one agent, and a worker killed with -9
leaves no session silently missing: its sessions end as `aborted`."""

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from livekit import api
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.frontend import RoomClient
from tests.worker.conftest import (
    RunningWorker,
    agents_in,
    jobs_of,
    launched_workers,
    registered_id,
)
from worker.records import HEARTBEATS

pytestmark = pytest.mark.usefixtures("text_only_agents")
REPLICAS = 3
ROOMS = 30
STALE_AFTER_S = 4


@pytest.fixture(scope="module")
def replicas(
    endpoints: Endpoints, worker_database: AsyncDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[RunningWorker]]:
    fast_heartbeats = {"SESSION_HEARTBEAT_S": "1", "SESSION_STALE_AFTER_S": str(STALE_AFTER_S)}
    with launched_workers(
        endpoints,
        worker_database.name,
        tmp_path_factory,
        prefix="sb-scale",
        replicas=REPLICAS,
        extra_env=fast_heartbeats,
    ) as started:
        yield started


def new_client(endpoints: Endpoints, agent_name: str) -> RoomClient:
    return RoomClient(
        endpoints.livekit_url, endpoints.livekit_api_key, endpoints.livekit_api_secret, agent_name
    )


async def test_rooms_spread_across_replicas_with_exactly_one_agent_each(
    endpoints: Endpoints, replicas: list[RunningWorker], worker_database: AsyncDatabase
) -> None:
    clients = [new_client(endpoints, replicas[0].agent_name) for _ in range(ROOMS)]
    try:
        for batch in range(0, ROOMS, 10):
            group = clients[batch : batch + 10]
            await asyncio.gather(
                *(c.join({"purpose": "support", "user_id": f"u-{id(c)}"}) for c in group)
            )
            await asyncio.gather(*(c.routed_agent(timeout=90) for c in group))
        # What LiveKit placed, not what joined within a guessed time: a room's dispatch holds
        # a job for each placement, so a room sent to two workers shows two.
        async with api.LiveKitAPI(
            endpoints.livekit_url, endpoints.livekit_api_key, endpoints.livekit_api_secret
        ) as lk:
            jobs = [await jobs_of(lk, c.room_name) for c in clients]
        assert jobs == [1] * ROOMS
        assert [agents_in(c) for c in clients] == [1] * ROOMS
        rooms = [c.room_name for c in clients]
        records = await _sessions_of_rooms(worker_database, rooms)
        missing = set(rooms) - {r["room"] for r in records}
        assert not missing and len(records) == ROOMS, (
            f"one session record per room; without one: {missing}"
        )
        per_worker = Counter(r["worker_id"] for r in records)
        print(f"sessions per worker: {dict(per_worker)}")
        assert set(per_worker) <= {registered_id(r) for r in replicas}
        assert len(per_worker) >= 2, f"all rooms went to one worker: {per_worker}"
    finally:
        await asyncio.gather(*(c.leave() for c in clients))


async def test_a_killed_worker_leaves_its_session_aborted_not_missing(
    endpoints: Endpoints, replicas: list[RunningWorker], worker_database: AsyncDatabase
) -> None:
    victim_client = new_client(endpoints, replicas[0].agent_name)
    await victim_client.join({"purpose": "sales", "user_id": "u-victim"})
    await victim_client.routed_agent()
    record = await _session_of(worker_database, victim_client.room_name)
    victim = next(r for r in replicas if registered_id(r) == record["worker_id"])
    os.killpg(victim.process.pid, signal.SIGKILL)  # the whole pod: worker and job processes
    victim.process.wait()

    # Only a job started once the session is stale can sweep it: probes sent before that
    # (one every 2 s) each cost a room and found nothing to do.
    await _beats_stopped(worker_database, record, STALE_AFTER_S, timeout=30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        probe = new_client(
            endpoints, replicas[0].agent_name
        )  # a job start on a live replica sweeps
        try:
            await probe.join({"purpose": "support", "user_id": "u-probe"})
            await probe.routed_agent()
        finally:
            await probe.leave()
        current = await worker_database["sessions"].find_one({"session_id": record["session_id"]})
        if current["status"] == "aborted":
            break
        await asyncio.sleep(2)
    assert current["status"] == "aborted" and current["end_reason"] == "worker_lost"

    # What LiveKit did with the room: re-dispatched it to a live replica, or not.
    redispatched = await worker_database["sessions"].count_documents(
        {"room": victim_client.room_name, "session_id": {"$ne": record["session_id"]}}
    )
    print(f"LiveKit re-dispatched the room of the killed worker: {bool(redispatched)}")
    await victim_client.leave()


async def _sessions_of_rooms(
    database: AsyncDatabase, rooms: list[str], timeout: float = 30.0
) -> list[dict]:
    """The rooms' session records once each room has one (or what there is at the deadline).
    A start record goes through the worker's record queue after the agent has joined: with 30
    rooms arriving on two cores it can land a few seconds after the agent's attribute."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        records = await database["sessions"].find({"room": {"$in": rooms}}).to_list(None)
        if {r["room"] for r in records} >= set(rooms) or loop.time() > deadline:
            return records
        await asyncio.sleep(0.2)


async def _beats_stopped(
    database: AsyncDatabase, session: dict, stale_after_s: float, timeout: float
) -> None:
    """Until the session's start and its last heartbeat are both older than `stale_after_s`
    (the sweep's cutoff, worker/records.py), so the next sweep finds it stale."""

    def utc(moment: datetime) -> datetime:
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        beat = await database[HEARTBEATS].find_one({"_id": session["_id"]})
        last = max(utc(session["started_at"]), *([utc(beat["beat_at"])] if beat else []))
        if datetime.now(UTC) - last > timedelta(seconds=stale_after_s):
            return
        assert loop.time() < deadline, f"the killed worker's session still beats: {last}"
        await asyncio.sleep(0.2)


async def _session_of(database: AsyncDatabase, room: str) -> dict:
    for _ in range(100):
        record = await database["sessions"].find_one({"room": room})
        if record is not None and record.get("worker_id"):
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"no session record for {room}")
