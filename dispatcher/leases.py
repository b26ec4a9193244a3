"""Leases on ordering pairs: while a dispatcher holds (subscription, ordering_key), no other
sends anything of that pair, so one event is never in flight twice and a session's events go
one after another.

Why a collection of its own (`webhook_leases`) instead of `find_one_and_update` on the
delivery: FerretDB v1 evaluates an update's filter and then writes, not as one step. Two
dispatchers racing for the same delivery with `find_one_and_update({..., lease free})` both won
189 times in 200 (update_one: 197 in 200; measured on FerretDB 1.24 / SQLite). An insert
against a unique index is atomic there as on MongoDB (0 double wins in 300), so taking a lease
is inserting `{_id: <random>, pair, owner, until}` under a unique index on `pair`.

An expired lease (its owner died) is deleted by its own random `_id` before inserting ours: a
replica doing the same at once deletes nothing or the same dead lease, never the new one, and
only one insert wins.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from agent_configs.database import bson_now

LEASES = "webhook_leases"


def pair_key(subscription_id: str, ordering_key: str) -> str:
    return f"{subscription_id}|{ordering_key}"


@dataclass(frozen=True)
class Lease:
    id: str
    pair: str
    until: datetime


class PairLeases:
    def __init__(self, database: AsyncDatabase, owner: str, lease_s: float) -> None:
        self._collection = database[LEASES]
        self._owner = owner
        self._lease_s = lease_s

    async def ensure_indexes(self) -> None:
        await self._collection.create_index("pair", unique=True)
        await self._collection.create_index("owner")

    async def take(self, pair: tuple[str, str]) -> Lease | None:
        """The pair's lease for `lease_s` from now, or None while another live owner has it."""
        key = pair_key(*pair)
        for _ in range(2):  # a second try only after deleting a dead owner's lease
            now = bson_now()
            lease = Lease(secrets.token_hex(12), key, now + timedelta(seconds=self._lease_s))
            try:
                await self._collection.insert_one(
                    {
                        "_id": lease.id,
                        "pair": key,
                        "owner": self._owner,
                        "until": lease.until,
                        "taken_at": now,
                    }
                )
                return lease
            except DuplicateKeyError:
                held = await self._collection.find_one({"pair": key})
                if held is not None and held["until"] > now:
                    return None
                if held is not None:
                    await self._collection.delete_one({"_id": held["_id"]})
        return None

    async def release(self, lease: Lease) -> None:
        await self._collection.delete_one({"_id": lease.id})

    async def release_all(self) -> None:
        await self._collection.delete_many({"owner": self._owner})
