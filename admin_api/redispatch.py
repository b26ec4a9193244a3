"""No room left waiting: a sweep that dispatches again a room LiveKit gave up on.

livekit-server (v1.13.5) drops a dispatch when no worker is available at that moment (all
full, draining, restarting): it does not queue it, the dispatch stays in the room with no
job, and the user waits forever. Every `interval_s` this sweep lists the rooms and, for a
room where a user has waited `after_s` with no agent participant and none of our
dispatches ever got a job, creates the dispatch again (same agent name, same metadata),
with exponential backoff between attempts.

Why a sweep and not LiveKit's webhooks: a webhook (`participant_joined`) fires once, when
the room may well still be unplaceable, so a timer per room is needed anyway to try again
later; the sweep is that timer, needs no livekit-server config and no route reachable from
LiveKit (LiveKit Cloud included), and restarts lose nothing because it keeps no state of
its own. Everything it decides on is read from LiveKit: the number of our dispatches in the
room is the attempt number, the newest one's `created_at` starts the backoff. Cost: one
ListRooms per sweep, plus ListParticipants and ListDispatch for rooms not yet seen served
(a served room is remembered by sid and skipped afterwards).

Never twice: a room is dispatched again only while no agent is in it and no dispatch of
ours has a job (a job exists from the moment a worker is assigned, running or done). Admin
API replicas each sweep; the attempt is claimed first in MongoDB (`room_redispatches`,
`_id` = room sid and attempt number), so of two replicas exactly one dispatches. With the
database unreachable the sweep dispatches without a claim: a waiting user matters more
than the rare double agent of two replicas sweeping the same second.

The frontend is told: every attempt sends a data packet on topic `switchboard.waiting`,
`{"state": "waiting_for_agent", "waited_s", "attempt", "next_attempt_in_s"}`.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import api
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

logger = logging.getLogger("switchboard.admin.redispatch")

WAITING_TOPIC = "switchboard.waiting"
CLAIMS = "room_redispatches"
NOT_USERS = (api.ParticipantInfo.Kind.AGENT, api.ParticipantInfo.Kind.EGRESS)


@dataclass(frozen=True)
class RedispatchPolicy:
    after_s: float = 10.0  # a user waited this long with no agent
    interval_s: float = 2.0  # between sweeps
    backoff_s: float = 5.0  # between attempts for one room, doubled each time
    backoff_max_s: float = 60.0

    def backoff(self, attempts: int) -> float:
        """Wait after the `attempts`-th dispatch (the first one is LiveKit's own)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempts - 1))


class RedispatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.redispatched = Counter(
            "switchboard_admin_redispatches",
            "Rooms dispatched again because a user waited with no agent, by agent name.",
            ["agent_name"],
            registry=registry,
        )
        self.waiting = Gauge(
            "switchboard_admin_rooms_waiting_for_agent",
            "Rooms where a user has waited longer than the re-dispatch threshold with no agent.",
            registry=registry,
        )
        self.errors = Counter(
            "switchboard_admin_redispatch_errors",
            "Sweeps or rooms that failed (LiveKit unreachable).",
            registry=registry,
        )


class Redispatcher:
    def __init__(
        self,
        livekit: Callable[[], api.LiveKitAPI],
        agent_names: set[str],
        policy: RedispatchPolicy,
        metrics: RedispatchMetrics,
        database: AsyncDatabase | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._livekit = livekit
        self._agent_names = agent_names
        self._policy = policy
        self._metrics = metrics
        self._database = database
        self._clock = clock
        self._served: set[str] = set()  # room sids that had a job: never looked at again

    async def run(self) -> None:
        async with self._livekit() as lk:
            while True:
                try:
                    await self.sweep(lk)
                except Exception as exc:  # LiveKit restarting: the next sweep tries again
                    self._metrics.errors.inc()
                    logger.warning("re-dispatch sweep failed: %s", exc)
                await asyncio.sleep(self._policy.interval_s)

    async def sweep(self, lk: api.LiveKitAPI) -> list[str]:
        """One pass; returns the rooms dispatched again."""
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
        self._served &= {room.sid for room in rooms}
        waiting = 0
        dispatched: list[str] = []
        for room in rooms:
            if room.sid in self._served or room.num_participants == 0:
                continue
            try:
                outcome = await self._check(lk, room)
            except Exception as exc:
                self._metrics.errors.inc()
                logger.warning("room %s: re-dispatch check failed: %s", room.name, exc)
                continue
            waiting += outcome != "fine"
            if outcome == "dispatched":
                dispatched.append(room.name)
        self._metrics.waiting.set(waiting)
        return dispatched

    async def _check(self, lk: api.LiveKitAPI, room: api.Room) -> str:
        dispatches = [
            d
            for d in await lk.agent_dispatch.list_dispatch(room.name)
            if d.agent_name in self._agent_names
        ]
        if not dispatches:
            return "fine"  # not a room of ours
        if any(d.state.jobs for d in dispatches):
            self._served.add(room.sid)
            return "fine"
        participants = (
            await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
        ).participants
        if any(p.kind == api.ParticipantInfo.Kind.AGENT for p in participants):
            self._served.add(room.sid)
            return "fine"
        users = [p for p in participants if p.kind not in NOT_USERS]
        if not users:
            return "fine"
        now = self._clock()
        waited = now - min(p.joined_at for p in users)
        if waited < self._policy.after_s:
            return "fine"
        newest = max(dispatches, key=lambda d: d.state.created_at)
        since_newest = now - newest.state.created_at / 1e9
        if since_newest < self._policy.backoff(len(dispatches)):
            return "waiting"
        attempt = len(dispatches)  # dispatches so far: the first was LiveKit's own
        if not await self._claim(room, attempt):
            return "waiting"
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                room=room.name, agent_name=newest.agent_name, metadata=newest.metadata
            )
        )
        self._metrics.redispatched.labels(newest.agent_name).inc()
        next_in = self._policy.backoff(attempt + 1)
        logger.info(
            "room %s: user waited %.0fs with no agent, dispatched %s again (attempt %d)",
            room.name,
            waited,
            newest.agent_name,
            attempt,
        )
        await self._tell_waiting(lk, room.name, waited, attempt, next_in)
        return "dispatched"

    async def _claim(self, room: api.Room, attempt: int) -> bool:
        if self._database is None:
            return True
        try:
            await self._database[CLAIMS].insert_one(
                {"_id": f"{room.sid}#{attempt}", "room": room.name, "claimed_at": self._clock()}
            )
        except DuplicateKeyError:
            return False  # another admin API replica took this attempt
        except PyMongoError as exc:
            logger.warning(
                "room %s: attempt %d dispatched without a claim: %s", room.name, attempt, exc
            )
        return True

    async def _tell_waiting(
        self, lk: api.LiveKitAPI, room: str, waited: float, attempt: int, next_in: float
    ) -> None:
        payload: dict[str, Any] = {
            "state": "waiting_for_agent",
            "waited_s": round(waited, 1),
            "attempt": attempt,
            "next_attempt_in_s": next_in,
        }
        try:
            await lk.room.send_data(
                api.SendDataRequest(
                    room=room,
                    data=json.dumps(payload).encode(),
                    kind=api.DataPacket.Kind.RELIABLE,
                    topic=WAITING_TOPIC,
                )
            )
        except Exception as exc:  # telling is a nicety; the dispatch went out
            logger.warning("room %s: could not send %s: %s", room, WAITING_TOPIC, exc)
