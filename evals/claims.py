"""Claims on eval runs: while a run service holds a run's claim, no other runs it.

A claim is an insert against a unique index on `run_id` (collection `eval_run_claims`), as the
dispatcher's leases are (dispatcher/leases.py): FerretDB v1 evaluates an update's filter and
then writes, not as one step, so two services flipping `status: queued -> running` with a
filtered update could both win (the dispatcher measured 189 double wins in 200); an insert
against a unique index is atomic there as on MongoDB.

The holder renews its claim's `until` while it runs the run (a heartbeat). A claim past its
`until` belongs to a service that died: another deletes it by its own random `_id` (a replica
doing the same at once deletes nothing or the same dead claim, never a new one) and inserts
its own, and only one insert wins.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from agent_configs.database import bson_now
from agent_configs.eval_runs import EVAL_RUN_CLAIMS


@dataclass(frozen=True)
class Claim:
    id: str
    run_id: str


class RunClaims:
    def __init__(self, database: AsyncDatabase, owner: str, lease_s: float) -> None:
        self._collection = database[EVAL_RUN_CLAIMS]
        self.owner = owner
        self.lease_s = lease_s

    async def ensure_indexes(self) -> None:
        """The unique index is what makes a claim exclusive: not optional."""
        await self._collection.create_index("run_id", unique=True)

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    async def take(self, run_id: str) -> Claim | None:
        """The run's claim for `lease_s` from now, or None while another live service has it."""
        for _ in range(2):  # a second try only after deleting a dead holder's claim
            now = bson_now()
            claim = Claim(secrets.token_hex(12), run_id)
            try:
                await self._collection.insert_one(
                    {
                        "_id": claim.id,
                        "run_id": run_id,
                        "owner": self.owner,
                        "until": self._until(now),
                        "taken_at": now,
                    }
                )
                return claim
            except DuplicateKeyError:
                held = await self.holder(run_id)
                if held is not None and held["until"] > now:
                    return None
                if held is not None:
                    await self._collection.delete_one({"_id": held["_id"]})
        return None

    async def holder(self, run_id: str) -> dict[str, Any] | None:
        return await self._collection.find_one({"run_id": run_id})

    async def renew(self, claim: Claim) -> bool:
        """False when the claim is gone (it expired and another service took the run over)."""
        result = await self._collection.update_one(
            {"_id": claim.id}, {"$set": {"until": self._until(bson_now())}}
        )
        return result.matched_count == 1

    async def release(self, claim: Claim) -> None:
        await self._collection.delete_one({"_id": claim.id})
