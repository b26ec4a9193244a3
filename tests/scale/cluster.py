"""What the multi-node tests ask of a LiveKit cluster: rooms opened through the API of a chosen
node, the node that hosts each room (LiveKit's own record of it in Redis), and clients that
join a room through a chosen node."""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from livekit import api

from devstack import DEFAULT_ROOT
from devstack.frontend import RoomClient
from devstack.redis_server import ensure_redis
from devstack.services import Endpoints, LivekitNode
from tests.worker.conftest import RunningWorker

ROOM_NODE_MAP = "room_node_map"
"""LiveKit's Redis hash of room name -> id of the node hosting the room (pkg/routing/redisrouter.go)."""
NODES = "nodes"
"""LiveKit's Redis hash of node id -> its `Node` protobuf, stats included."""
AVAILABLE_SECONDS = 5
"""livekit-server's `selector.AvailableSeconds`: a node whose stats are this old gets no new room."""


@dataclass
class ClusterWorker:
    """A Switchboard worker and the LiveKit node it registered with (its LIVEKIT_URL)."""

    running: RunningWorker
    node: LivekitNode
    worker_id: str = ""


@dataclass
class OpenedRoom:
    """A room opened through `api_node`'s API with a dispatch of the workers' agent name, and
    the client that joins it through `join_node`."""

    name: str
    api_node: LivekitNode
    join_node: LivekitNode
    client: RoomClient
    opened_at: float = 0.0
    served_after_s: float | None = None


class JoiningClient(RoomClient):
    """Joins a room that exists already: its token names the room and nothing else. The room's
    agent dispatch was made with the room; a token's room configuration would be a second
    request to create it."""

    def __init__(self, node: LivekitNode, endpoints: Endpoints, room: str) -> None:
        super().__init__(node.url, endpoints.livekit_api_key, endpoints.livekit_api_secret, "")
        self.room_name = room

    def token(self, metadata: str | None, identity: str, **_: Any) -> str:
        grants = api.VideoGrants(room_join=True, room=self.room_name)
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(grants)
        )
        return (token.with_metadata(metadata) if metadata else token).to_jwt()


def lk_api(endpoints: Endpoints, node: LivekitNode) -> api.LiveKitAPI:
    return api.LiveKitAPI(node.url, endpoints.livekit_api_key, endpoints.livekit_api_secret)


async def agents_listed(lk: api.LiveKitAPI, room: str) -> int:
    """Agent participants in `room` as LiveKit lists them (asked of any node: the request goes
    to the node hosting the room). Not the dispatch's jobs: a dispatch made with CreateRoom
    lists none (`state.jobs` empty on both nodes, measured with v1.13.5), though its job ran."""
    listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return sum(1 for p in listed.participants if p.kind == api.ParticipantInfo.Kind.AGENT)


def new_room(endpoints: Endpoints, api_node: LivekitNode, join_node: LivekitNode) -> OpenedRoom:
    name = f"scale-{uuid.uuid4().hex[:10]}"
    return OpenedRoom(name, api_node, join_node, JoiningClient(join_node, endpoints, name))


async def open_room(
    endpoints: Endpoints,
    room: OpenedRoom,
    agent_name: str,
    metadata: dict[str, Any],
    *,
    join_the_host: bool = False,
    empty_timeout: int = 0,
) -> OpenedRoom:
    """Create the room (with its agent dispatch) through its `api_node`, then join it through
    its `join_node` (`join_the_host`: through the node LiveKit placed it on) as the user named
    in `metadata`. `empty_timeout` (s): how long LiveKit keeps the room with no user in it
    (0: the server's default, 300 s)."""
    room.opened_at = time.monotonic()
    text = json.dumps(metadata)
    async with lk_api(endpoints, room.api_node) as lk:
        dispatch = api.RoomAgentDispatch(agent_name=agent_name, metadata=text)
        await lk.room.create_room(
            api.CreateRoomRequest(name=room.name, agents=[dispatch], empty_timeout=empty_timeout)
        )
    if join_the_host:
        room.join_node = await host_of(endpoints, room.name)
        room.client = JoiningClient(room.join_node, endpoints, room.name)
    await room.client.join(text, identity=str(metadata["user_id"]))
    return room


async def wait_served(room: OpenedRoom, timeout: float = 90.0) -> OpenedRoom:
    """Until the room's agent has said which type serves it; notes how long that took."""
    await room.client.routed_agent(timeout)
    room.served_after_s = time.monotonic() - room.opened_at
    return room


async def redis_cli(endpoints: Endpoints, *command: str) -> bytes:
    """One command to LiveKit's Redis through the devstack's redis-cli (`--raw`: the reply's
    bytes, a newline after each; no Redis client library in the project for a few reads)."""
    assert endpoints.redis_address, "not a multi-node stack"
    redis = ensure_redis(DEFAULT_ROOT)
    host, port = endpoints.redis_address.rsplit(":", 1)
    process = await asyncio.create_subprocess_exec(
        *(str(redis.cli), "-h", host, "-p", port, "--raw", *command),
        env=redis.env({}),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"redis-cli exited with {process.returncode}"
    return out


async def rooms_by_node(endpoints: Endpoints) -> dict[str, str]:
    """Room name -> the id of the node LiveKit placed it on."""
    lines = (await redis_cli(endpoints, "HGETALL", ROOM_NODE_MAP)).decode().split("\n")[:-1]
    return dict(zip(lines[::2], lines[1::2], strict=True))


async def seconds_since_node_report(endpoints: Endpoints, node: LivekitNode) -> float:
    """How long ago the node last reported its stats, as every node reads it: LiveKit places
    no new room on a node whose report is `AVAILABLE_SECONDS` old. A node gone from the
    registry counts as never reported (inf)."""
    raw = (await redis_cli(endpoints, "HGET", NODES, node.node_id))[:-1]
    updated_at = _field(_field(raw, 4), 2) if raw else None  # Node.stats.updated_at
    # livekit-server compares whole Unix seconds (selector.IsAvailable)
    return int(time.time()) - updated_at if isinstance(updated_at, int) else float("inf")


def _field(message: bytes | int | None, number: int) -> bytes | int | None:
    """Field `number` of a protobuf message (a varint or a length-delimited field): enough to
    read `Node.stats.updated_at` (livekit_internal.proto), which livekit's Python packages do
    not ship."""
    if not isinstance(message, bytes):
        return None
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        kind = key & 7
        if kind == 0:
            value, position = _varint(message, position)
            found: bytes | int = value
        elif kind == 2:
            size, position = _varint(message, position)
            found, position = message[position : position + size], position + size
        else:  # fixed32 / fixed64: skipped
            position += 4 if kind == 5 else 8
            continue
        if key >> 3 == number:
            return found
    return None


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


async def host_of(endpoints: Endpoints, room: str) -> LivekitNode:
    """The node hosting `room` (it has one from its creation on)."""
    node_id = (await rooms_by_node(endpoints))[room]
    return next(node for node in endpoints.livekit_nodes if node.node_id == node_id)


async def session_records(database: Any, rooms: list[str], timeout: float = 60.0) -> list[dict]:
    """The session records of `rooms` once each room has one (or what there is at the deadline).
    A start record goes through the worker's record queue after the agent has joined."""
    deadline = time.monotonic() + timeout
    while True:
        records = await database["sessions"].find({"room": {"$in": rooms}}).to_list(None)
        if {r["room"] for r in records} >= set(rooms) or time.monotonic() > deadline:
            return list(records)
        await asyncio.sleep(0.5)


async def records_settled(
    database: Any, rooms: list[str], statuses: set[str], timeout: float = 120.0
) -> list[dict]:
    """The session records of `rooms` (one or more each) once every one has a status in
    `statuses` (or what there is at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        records = await database["sessions"].find({"room": {"$in": rooms}}).to_list(None)
        settled = all(r.get("status") in statuses for r in records)
        if settled and {r["room"] for r in records} >= set(rooms):
            return list(records)
        if time.monotonic() > deadline:
            return list(records)
        await asyncio.sleep(0.5)
