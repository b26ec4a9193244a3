"""Past one machine, on loopback: two LiveKit nodes sharing Redis and four Switchboard workers
(two registered with each node). A hundred rooms arrive in bursts; then a worker is killed.

The model is the scripted endpoint (answers at once): on 2 cores the CPU model would be the
bottleneck, and what is judged here is placement and records, not replies.
"""

import asyncio
import os
import signal
import statistics
import time
from collections import Counter

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import OUTBOX, EventType
from devstack import Endpoints
from tests.scale.cluster import (
    ClusterWorker,
    OpenedRoom,
    agents_listed,
    lk_api,
    new_room,
    open_room,
    records_settled,
    rooms_by_node,
    session_records,
    wait_served,
)
from tests.worker.conftest import agents_in

pytestmark = pytest.mark.scale
ROOMS = 100
BURST = 25


async def test_a_hundred_rooms_in_bursts_get_one_agent_each_spread_over_workers_and_nodes(
    endpoints: Endpoints, workers: list[ClusterWorker], cluster_database: AsyncDatabase
) -> None:
    """Four bursts of 25 rooms, each opened at once through the API of either node (alternating)
    and joined by a client through either node. Every room gets exactly one agent and one
    session, which answers a turn; the burst's users then leave, and every session is recorded
    `ended` before the next burst arrives (so at most 25 rooms, plus the job processes of the
    burst before still exiting, are live at once: see the README's Multi-node section for what
    a burst larger than one node's workers can take does)."""
    nodes = endpoints.livekit_nodes
    agent_name = workers[0].running.agent_name
    placed: dict[str, str] = {}
    records: list[dict] = []
    served: list[float] = []
    burst_seconds: list[float] = []
    for burst in range(ROOMS // BURST):
        batch = [new_room(endpoints, nodes[i % 2], nodes[(i // 2) % 2]) for i in range(BURST)]
        names = [room.name for room in batch]
        try:
            started = time.monotonic()
            await asyncio.gather(
                *(
                    open_room(
                        endpoints,
                        room,
                        agent_name,
                        {"purpose": "support", "user_id": f"u-{burst}-{i}", "modality": "text"},
                    )
                    for i, room in enumerate(batch)
                )
            )
            await asyncio.gather(*(wait_served(room) for room in batch))
            burst_seconds.append(time.monotonic() - started)
            served += [room.served_after_s or 0.0 for room in batch]
            await asyncio.gather(*(_one_turn(room) for room in batch))
            async with lk_api(endpoints, nodes[burst % 2]) as lk:
                listed = [await agents_listed(lk, name) for name in names]
            assert listed == [1] * BURST, "one agent participant per room, as LiveKit lists them"
            assert [agents_in(room.client) for room in batch] == [1] * BURST
            # LiveKit forgets a room's node when the room closes: read it while they are open.
            placed |= {
                n: node for n, node in (await rooms_by_node(endpoints)).items() if n in names
            }
        finally:
            await asyncio.gather(*(room.client.leave() for room in batch))
        ended = await records_settled(cluster_database, names, {"ended"})
        assert Counter(r["room"] for r in ended) == Counter(names), "one session per room"
        not_ended = [
            {k: r.get(k) for k in ("room", "status", "worker_id", "started_at", "end_reason")}
            | {"last_beat": await _last_beat(cluster_database, r["_id"])}
            for r in ended
            if r.get("status") != "ended"
        ]
        assert not not_ended, f"every session ended once its user left: {not_ended}"
        records += ended

    node_of_worker = {w.worker_id: w.node.node_id for w in workers}
    rooms_per_node = Counter(placed.values())
    jobs_per_worker = Counter(r["worker_id"] for r in records)
    jobs_per_worker_node = Counter(node_of_worker[w] for w in jobs_per_worker.elements())
    served.sort()
    print(
        f"\n{ROOMS} rooms in bursts of {BURST} on {len(nodes)} nodes and {len(workers)} workers"
        f"\n  rooms hosted per node: {dict(rooms_per_node)}"
        f"\n  jobs per worker: {dict(jobs_per_worker)}"
        f"\n  jobs per node the serving worker is registered with: {dict(jobs_per_worker_node)}"
        f"\n  seconds for each burst to have all its agents: {[round(s, 1) for s in burst_seconds]}"
        f"\n  room opened -> its agent there, s: p50 {statistics.median(served):.2f}, "
        f"p95 {served[int(0.95 * (len(served) - 1))]:.2f}, max {served[-1]:.2f}"
    )
    assert len(placed) == ROOMS and set(rooms_per_node) == {n.node_id for n in nodes}
    assert set(jobs_per_worker) == set(node_of_worker), "jobs on all four workers"


async def _last_beat(database: AsyncDatabase, session_id: str) -> object:
    """When the session last said it was alive (worker/records.py, `session_heartbeats`)."""
    beat = await database["session_heartbeats"].find_one({"_id": session_id})
    return beat and beat.get("beat_at")


async def _one_turn(room: OpenedRoom) -> None:
    """One message answered. Not the greeting: the room's job starts when the room is created,
    and an agent that is in the room before its user greets nobody (seen in 1 room of 100)."""
    await room.client.say("Hello, my order has not arrived.")
    turn = await room.client.next_turn(0)
    assert turn.get("status", "ok") == "ok", turn


async def test_a_killed_worker_leaves_its_sessions_aborted_and_reported(
    endpoints: Endpoints, workers: list[ClusterWorker], cluster_database: AsyncDatabase
) -> None:
    """SIGKILL to a worker's whole process group (a lost pod): none of its sessions writes an
    end; the stale-session sweep, run at a job start on a live worker, marks each `aborted`
    (`worker_lost`) and puts a `session.aborted` event in the outbox for the webhooks."""
    nodes = endpoints.livekit_nodes
    agent_name = workers[0].running.agent_name
    rooms = [new_room(endpoints, nodes[i % 2], nodes[i % 2]) for i in range(8)]
    probes: list[OpenedRoom] = []
    try:
        await asyncio.gather(
            *(
                open_room(
                    endpoints, room, agent_name, {"purpose": "sales", "user_id": f"u-kill-{i}"}
                )
                for i, room in enumerate(rooms)
            )
        )
        await asyncio.gather(*(wait_served(room) for room in rooms))
        records = await session_records(cluster_database, [r.name for r in rooms])
        per_worker = Counter(r["worker_id"] for r in records)
        victim_id, _ = per_worker.most_common(1)[0]
        victim = next(w for w in workers if w.worker_id == victim_id)
        lost = [r["_id"] for r in records if r["worker_id"] == victim_id]
        os.killpg(victim.running.process.pid, signal.SIGKILL)
        victim.running.process.wait()
        killed_at = time.monotonic()

        # The sweep runs at a job start on a live worker, at most once per 2 s: rooms keep
        # arriving until it has run (bounded; each probe is a real session).
        aborted: list[dict] = []
        while time.monotonic() - killed_at < 90:
            probe = new_room(endpoints, victim.node, victim.node)
            probes.append(probe)
            await open_room(endpoints, probe, agent_name, {"purpose": "support", "user_id": "p"})
            await wait_served(probe)
            aborted = (
                await cluster_database["sessions"]
                .find({"_id": {"$in": lost}, "status": "aborted"})
                .to_list(None)
            )
            if len(aborted) == len(lost):
                break
            await asyncio.sleep(1)
        print(
            f"\nkilled worker {victim_id} ({victim.node.node_id}) with {len(lost)} sessions: "
            f"{len(aborted)} aborted {time.monotonic() - killed_at:.1f}s later, "
            f"after {len(probes)} more room(s)"
        )
        assert len(aborted) == len(lost)
        assert {r["end_reason"] for r in aborted} == {"worker_lost"}
        events = (
            await cluster_database[OUTBOX]
            .find({"type": str(EventType.SESSION_ABORTED), "session_id": {"$in": lost}})
            .to_list(None)
        )
        assert sorted(e["session_id"] for e in events) == sorted(lost), "one event per session"

        # What LiveKit did with the lost jobs' rooms: sent them to a live worker, or not.
        lost_rooms = {r["room"] for r in records if r["worker_id"] == victim_id}
        again = await cluster_database["sessions"].count_documents(
            {"room": {"$in": list(lost_rooms)}, "_id": {"$nin": lost}}
        )
        print(f"  rooms of the killed worker given a new session by LiveKit: {again}")
    finally:
        await asyncio.gather(*(room.client.leave() for room in rooms + probes))
