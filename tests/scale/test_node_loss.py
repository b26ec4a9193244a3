"""One LiveKit node of two lost, on loopback: SIGKILL, as when its machine or pod dies (the
process and every socket gone at once). SIGTERM would be LiveKit's drain instead: the node
takes no new rooms and exits once its last participant has left (README, Multi-node).

A session needs three things on live nodes: the node hosting its room, the node its user
connects through and the node its agent connects through (the worker's LIVEKIT_URL). Here a
user joins through the node hosting the room, and the four workers are registered two with
each node, so every combination shows up.

The model is the scripted endpoint (answers at once): on 2 cores the CPU model would be the
bottleneck, and what is judged here is which sessions survive, not replies.
"""

import asyncio
import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from livekit import api, rtc
from pymongo.asynchronous.database import AsyncDatabase

from devstack import Endpoints
from devstack.services import LivekitNode
from tests.scale.cluster import (
    AVAILABLE_SECONDS,
    ClusterWorker,
    OpenedRoom,
    agents_listed,
    lk_api,
    new_room,
    open_room,
    records_settled,
    rooms_by_node,
    seconds_since_node_report,
    session_records,
    wait_served,
)
from tests.worker.conftest import agents_in

pytestmark = pytest.mark.scale
EMPTY_TIMEOUT_S = 20
"""The rooms' `empty_timeout` (LiveKit's default: 300 s). A room of the lost node that an agent
reconnects to is re-created on the survivor, with its agent dispatch, and holds agents only:
LiveKit closes it this long after the room was first created."""
UNTOUCHED = 2
"""Rooms wholly on the surviving node (room, user and agent) to open at least, and rooms
wholly on the node to be lost."""


async def test_a_lost_node_ends_the_sessions_that_touched_it_and_new_rooms_go_to_the_survivor(
    endpoints: Endpoints,
    workers: list[ClusterWorker],
    cluster_database: AsyncDatabase,
) -> None:
    """What a lost node takes with it: every session with its room, its user's connection or
    its agent's connection on that node ends (`ended`, written by the job process that is
    still alive), and nothing is moved. Rooms wholly on the survivor go on and answer, new
    rooms go to the survivor once LiveKit stops listing the lost node (5 s after its last
    report), and the lost node's workers serve nothing while they retry it."""
    survivor, lost = endpoints.livekit_nodes
    agent_name = workers[0].running.agent_name
    node_of_worker = {w.worker_id: w.node for w in workers}
    rooms: list[OpenedRoom] = []
    try:
        # Rooms through either node's API, six at a time, until there are rooms wholly on
        # each node (LiveKit places rooms and jobs at random: usually one batch does).
        agent_node: dict[str, LivekitNode] = {}
        while len(rooms) < 30:
            batch = [new_room(endpoints, (survivor, lost)[i % 2], survivor) for i in range(6)]
            rooms += batch
            await asyncio.gather(
                *(
                    open_room(
                        endpoints,
                        room,
                        agent_name,
                        {"purpose": "support", "user_id": f"u-{len(rooms)}-{i}"},
                        join_the_host=True,
                        empty_timeout=EMPTY_TIMEOUT_S,
                    )
                    for i, room in enumerate(batch)
                )
            )
            await asyncio.gather(*(wait_served(room) for room in batch))
            for record in await session_records(cluster_database, _names(batch)):
                agent_node[record["room"]] = node_of_worker[record["worker_id"]]
            kinds = Counter((r.join_node, agent_node[r.name]) for r in rooms)
            if min(kinds[(node, node)] for node in (survivor, lost)) >= UNTOUCHED:
                break

        opened = list(rooms)
        touched = [r for r in opened if lost in (r.join_node, agent_node[r.name])]
        untouched = [r for r in opened if r not in touched]
        hosted_there = [r for r in opened if r.join_node is lost]
        agent_through_it = [
            r for r in opened if r.join_node is survivor and agent_node[r.name] is lost
        ]
        user_left_alone = [
            r for r in opened if r.join_node is lost and agent_node[r.name] is survivor
        ]
        lost.process.send_signal(signal.SIGKILL)
        lost.process.wait()
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
        # The untouched rooms go on: their agent answers at once, and again below, after
        # everything the loss sets off has happened.
        await _answered(untouched, 0)

        # New rooms through the survivor's API: while the lost node's last report is recent
        # LiveKit still places some there, and creating those fails.
        placed_on_lost, created, window_s = await _rooms_created_while_listed(
            endpoints, survivor, lost
        )
        new_rooms = [new_room(endpoints, survivor, survivor) for _ in range(5)]
        rooms += new_rooms
        await asyncio.gather(
            *(
                open_room(endpoints, r, agent_name, {"purpose": "support", "user_id": f"n-{i}"})
                for i, r in enumerate(new_rooms)
            )
        )
        await asyncio.gather(*(wait_served(r) for r in new_rooms))
        new_records = await session_records(cluster_database, _names(new_rooms))
        hosts = await rooms_by_node(endpoints)
        assert {hosts[r.name] for r in new_rooms} == {survivor.node_id}
        assert {node_of_worker[r["worker_id"]] for r in new_records} == {survivor}
        async with lk_api(endpoints, survivor) as lk:
            assert [await agents_listed(lk, r.name) for r in new_rooms] == [1] * len(new_rooms)

        # Users whose room was on the lost node are disconnected, once their SDK gives up.
        await asyncio.gather(*(_disconnected(r) for r in hosted_there))
        user_gone_after = time.monotonic() - killed_at
        # An agent connected through the lost node leaves the room it was in.
        await asyncio.gather(
            *(r.client.wait_for(lambda r=r: agents_in(r.client) == 0) for r in agent_through_it)
        )
        await _answered(untouched, 1)
        assert [agents_in(r.client) for r in untouched] == [1] * len(untouched)

        # Nothing stays open: what touched the lost node ends, at once or when LiveKit closes
        # a re-created room that holds agents only.
        ended_sessions = await records_settled(
            cluster_database,
            _names(touched),
            {"ended"},
            timeout=EMPTY_TIMEOUT_S + 60,
        )
        sessions_per_room = Counter(r["room"] for r in ended_sessions)
        redispatched = {room for room, count in sessions_per_room.items() if count > 1}
        lost_workers = [w for w in workers if w.node is lost]
        print(
            f"\nlost node {lost.node_id} (SIGKILL) with {len(opened)} rooms open:"
            f"\n  untouched (room, user and agent on the survivor): {len(untouched)}, all answered"
            f"\n  hosted on the lost node: {len(hosted_there)}, users disconnected "
            f"{user_gone_after:.0f}s after the loss"
            f"\n  on the survivor with the agent through the lost node: {len(agent_through_it)}"
            f"\n  on the lost node with the agent through the survivor: {len(user_left_alone)}, "
            f"re-created on the survivor and dispatched again: {len(redispatched)}"
            f"\n  sessions that touched the lost node: {len(ended_sessions)}, the last ended "
            f"{_last_end_after(ended_sessions, killed_wall):.0f}s after the loss, end reasons "
            f"{dict(Counter(r.get('end_reason') for r in ended_sessions))}"
            f"\n  new rooms in the {window_s:.1f}s the lost node was still listed: "
            f"{created} created, {placed_on_lost} failed (placed on the lost node); then "
            f"{len(new_rooms)} more, all on {survivor.node_id} and served by its workers"
            f"\n  workers of the lost node still retrying it: "
            f"{sum(w.running.process.poll() is None for w in lost_workers)}"
        )
        statuses = Counter(r.get("status") for r in ended_sessions)
        assert set(statuses) == {"ended"}, (
            f"every session that touched the lost node ended: {statuses}"
        )
        # Only a room whose agent reconnected through the survivor is re-created there, and
        # dispatched again: no room gets a second agent while its user is in it.
        assert redispatched <= set(_names(user_left_alone))
        for worker in lost_workers:
            assert "failed to connect to livekit" in worker.running.log_path.read_text()
    finally:
        await asyncio.gather(*(r.client.leave() for r in rooms), return_exceptions=True)


async def _answered(rooms: list[OpenedRoom], turn: int) -> None:
    for room in rooms:
        await room.client.say("Are you still there?")
    turns = await asyncio.gather(*(room.client.next_turn(turn) for room in rooms))
    assert all(t.get("status", "ok") == "ok" for t in turns), turns


def _last_end_after(records: list[dict], moment: datetime) -> float:
    ends = [r["ended_at"] for r in records if r.get("ended_at")]
    return max((end - moment).total_seconds() for end in ends) if ends else float("nan")


def _names(rooms: list[OpenedRoom]) -> list[str]:
    return [room.name for room in rooms]


async def _disconnected(room: OpenedRoom, timeout: float = 90.0) -> None:
    await room.client.wait_for(
        lambda: room.client.room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED,
        timeout,
        "the client to give up reconnecting",
    )


async def _rooms_created_while_listed(
    endpoints: Endpoints, survivor: LivekitNode, lost: LivekitNode
) -> tuple[int, int, float]:
    """Rooms (no agent) created through the survivor's API, one after another, for as long as
    the lost node's last report is under `AVAILABLE_SECONDS` old: how many LiveKit placed on
    the lost node (the request fails: 503, no response from servers) and how many it created.
    Each is deleted again."""
    started = time.monotonic()
    failed = created = 0
    async with lk_api(endpoints, survivor) as lk:
        while await seconds_since_node_report(endpoints, lost) < AVAILABLE_SECONDS:
            name = f"probe-{uuid.uuid4().hex[:8]}"
            try:
                await lk.room.create_room(api.CreateRoomRequest(name=name))
            except api.TwirpError as exc:
                assert exc.status == 503, exc
                failed += 1
                continue
            created += 1
            await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    return failed, created, time.monotonic() - started
