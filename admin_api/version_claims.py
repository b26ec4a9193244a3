"""Saving the next version of a document so that two writers can never both succeed, on
FerretDB v1 as on MongoDB.

Why not `find_one_and_update({_id, version: v}, ...)`: FerretDB v1 evaluates an update's
filter and then writes, not as one step. Two rotations of one webhook secret sent at once both
matched version v and both answered 200 (3 runs of 20 pairs on FerretDB 1.24 / SQLite: each
run had such a pair); the later write replaced the earlier one, so the receiver given the first
secret was refused. An insert against a unique key is atomic there as on MongoDB (0 double wins
in 300, dispatcher/leases.py), so saving version v+1 starts by inserting the claim
`{_id: "<id>@<v+1>", document: <the new document>}` into `<collection>_versions`: only the
writer whose insert wins goes on to replace the document.

A writer that dies between its claim and its write would leave the document at v and every
later writer refused. So a writer that loses the claim while the document is still at v writes
the claim's document itself (rolling it forward, as agent_configs/store.py does with its
history) before reporting the conflict: the same content the winner writes, so the two writes
agree whichever lands last. Once its version is written a claim loses its copy of the document
(a subscription's holds a secret's ciphertext) and stays as a marker: a writer that read an
older version can never claim that version number again.
"""

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from agent_configs.database import bson_now


class VersionTaken(Exception):
    """Another writer saved the version this one meant to; `current` is the document's version
    now, None when the document is gone."""

    def __init__(self, current: int | None) -> None:
        super().__init__(f"version taken; now at {current}")
        self.current = current


def claim_id(document_id: str, version: int) -> str:
    return f"{document_id}@{version}"


async def save_next_version(
    collection: AsyncCollection, current: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any]:
    """Replace `current` (as read, at `current["version"]`) by `new`, whose version must be the
    next one; returns `new`. Raises VersionTaken when another writer saved that version first,
    and DuplicateKeyError never."""
    document_id, version = current["_id"], current["version"]
    if new["version"] != version + 1 or new["_id"] != document_id:
        raise ValueError("new must be the same document at the next version")
    claims = collection.database[f"{collection.name}_versions"]
    claim = claim_id(document_id, version + 1)
    try:
        await claims.insert_one(
            {
                "_id": claim,
                "document_id": document_id,
                "version": version + 1,
                "claimed_at": bson_now(),
                "document": new,
            }
        )
    except DuplicateKeyError:
        raise VersionTaken(await _roll_forward(collection, claims, document_id, version)) from None
    written = await collection.replace_one({"_id": document_id, "version": version}, new)
    if written.matched_count == 0:
        # Rolled forward by a writer that lost the claim (so the document is ours), or deleted.
        now = await collection.find_one({"_id": document_id}, {"version": 1})
        if now is None:
            await claims.delete_one({"_id": claim})  # its copy held what was never saved
            raise VersionTaken(None)
        if now["version"] <= version:
            raise VersionTaken(now["version"])
    await _written(claims, claim)
    return new


async def _roll_forward(
    collection: AsyncCollection, claims: AsyncCollection, document_id: str, version: int
) -> int | None:
    """Write the claim of `version + 1` if the document is still at `version` (its writer may
    have died); returns the document's version now (None: it is gone)."""
    claim = claim_id(document_id, version + 1)
    held = await claims.find_one({"_id": claim})
    now = await collection.find_one({"_id": document_id}, {"version": 1})
    if now is None:
        return None
    if now["version"] == version and held is not None and held.get("document") is not None:
        await collection.replace_one({"_id": document_id, "version": version}, held["document"])
        await _written(claims, claim)
        return version + 1
    return now["version"]


async def _written(claims: AsyncCollection, claim: str) -> None:
    """The claim's version is in the document: drop its copy, keep the marker."""
    await claims.update_one(
        {"_id": claim}, {"$unset": {"document": ""}, "$set": {"written_at": bson_now()}}
    )
