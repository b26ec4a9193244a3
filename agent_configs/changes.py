"""One stamp that changes with every write of an agent config or of the routing rules.

Workers keep configs and rules in memory. Reading this one small document by `_id` tells
them whether anything at all was written since they last looked, so routing a room costs
one round trip however many agent types the chain considers, and an admin edit still
reaches the very next session. Every write path in `ConfigStore` and `RulesStore` bumps it
after its data is stored, so a reader that sees the new stamp also sees the new data.
"""

import logging
import uuid

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from agent_configs.database import bson_now, database_errors

logger = logging.getLogger(__name__)

CHANGES = "catalog_changes"
STAMP_ID = "catalog"


class ChangeStamp:
    def __init__(self, database: AsyncDatabase) -> None:
        self._changes = database[CHANGES]

    async def read(self) -> str | None:
        """The current stamp; None before the first write ever."""
        with database_errors():
            document = await self._changes.find_one({"_id": STAMP_ID})
        return None if document is None else str(document["stamp"])

    async def bump(self) -> None:
        """Never fails the write it follows, which is already stored: if the database went
        away just now, workers still see the edit once their cache's max age is up."""
        update = {"$set": {"stamp": uuid.uuid4().hex, "changed_at": bson_now()}}
        try:
            try:
                await self._changes.update_one({"_id": STAMP_ID}, update, upsert=True)
            except DuplicateKeyError:  # two first writers upserted at once: the document exists now
                await self._changes.update_one({"_id": STAMP_ID}, update)
        except PyMongoError as exc:
            logger.warning(
                "change stamp not moved (workers see the edit within their cache max age): %s", exc
            )
