"""`max_concurrent_sessions`, enforced across every worker through the database.

Workers claim and release slots; the admin API counts them to explain a routing decision.

An agent type with a limit of N has N slot documents, unique on (agent_id, slot). Starting a
session claims a free slot by inserting it; FerretDB and MongoDB both enforce unique indexes
atomically, so two workers can never hold the same slot. A slot whose heartbeat stopped (its
worker was killed) is taken over after `stale_after_s`.

A session holds one slot of the type it runs (`SessionSlot`); an intent hand-off moves it to
the target type, so a hand-off counts against the target's limit like a routed session does.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

logger = logging.getLogger("switchboard.capacity")

SLOTS = "session_slots"


class CapacityGuard:
    def __init__(self, database: AsyncDatabase, stale_after_s: float = 90.0) -> None:
        self._slots = database[SLOTS]
        self.stale_after = timedelta(seconds=stale_after_s)
        self._indexed = False

    async def ensure_indexes(self) -> None:
        await self._slots.create_index([("agent_id", ASCENDING), ("slot", ASCENDING)], unique=True)
        self._indexed = True

    def _fresh_since(self) -> datetime:
        return datetime.now(UTC) - self.stale_after

    async def in_use(self, agent_id: str) -> int:
        return await self._slots.count_documents(
            {"agent_id": agent_id, "heartbeat_at": {"$gte": self._fresh_since()}}
        )

    async def unavailable_reason(self, agent_id: str, limit: int | None) -> str | None:
        if limit is None:
            return None
        used = await self.in_use(agent_id)
        return f"full: {used}/{limit} sessions" if used >= limit else None

    async def claim(self, agent_id: str, limit: int, session_id: str) -> int | None:
        """The claimed slot number, or None when all `limit` slots are held."""
        if not self._indexed:  # claims are only exclusive with it (idempotent, once per guard)
            await self.ensure_indexes()
        for slot in range(limit):
            if await self._try_insert(agent_id, slot, session_id):
                return slot
            stale = await self._slots.delete_one(
                {"agent_id": agent_id, "slot": slot, "heartbeat_at": {"$lt": self._fresh_since()}}
            )
            if stale.deleted_count and await self._try_insert(agent_id, slot, session_id):
                return slot
        return None

    async def _try_insert(self, agent_id: str, slot: int, session_id: str) -> bool:
        try:
            await self._slots.insert_one(
                {
                    "agent_id": agent_id,
                    "slot": slot,
                    "session_id": session_id,
                    "heartbeat_at": datetime.now(UTC),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def heartbeat(self, agent_id: str, slot: int, session_id: str) -> None:
        await self._slots.update_one(
            {"agent_id": agent_id, "slot": slot, "session_id": session_id},
            {"$set": {"heartbeat_at": datetime.now(UTC)}},
        )

    async def release(self, agent_id: str, slot: int, session_id: str) -> None:
        await self._slots.delete_one({"agent_id": agent_id, "slot": slot, "session_id": session_id})


@dataclass
class SessionSlot:
    """The capacity one session holds: a slot of its agent type when that type has a limit
    (`slot` None otherwise). The heartbeat and the release at the end follow it."""

    guard: CapacityGuard
    session_id: str
    agent_id: str
    slot: int | None

    async def move_to(self, agent_id: str, limit: int | None) -> bool:
        """Hold a slot of `agent_id` instead of the current one. False, with nothing changed,
        when all `limit` slots of the target are held.

        The target's slot is claimed before the old one is released: the session never runs
        without a slot, and a full target is refused rather than overbooked."""
        claimed = None
        if limit is not None:
            claimed = await self.guard.claim(agent_id, limit, self.session_id)
            if claimed is None:
                return False
        previous = (self.agent_id, self.slot)
        self.agent_id, self.slot = agent_id, claimed
        await self._release(*previous)
        return True

    async def heartbeat(self) -> None:
        if self.slot is not None:
            await self.guard.heartbeat(self.agent_id, self.slot, self.session_id)

    async def release(self) -> None:
        await self._release(self.agent_id, self.slot)
        self.slot = None

    async def _release(self, agent_id: str, slot: int | None) -> None:
        if slot is None:
            return
        try:
            await self.guard.release(agent_id, slot, self.session_id)
        except Exception as exc:  # a slot left behind is reclaimed once its heartbeat is stale
            logger.warning("could not release slot %s of %s: %s", slot, agent_id, exc)
