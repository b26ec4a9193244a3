"""`max_concurrent_sessions`, enforced across every worker through the database.

Workers claim and release slots; the admin API counts them to explain a routing decision.

An agent type with a limit of N has N slot documents, unique on (agent_id, slot). Starting a
session claims a free slot by inserting it; FerretDB and MongoDB both enforce unique indexes
atomically, so two workers can never hold the same slot. A slot whose heartbeat stopped (its
worker was killed) is taken over after `stale_after_s`.
"""

from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
