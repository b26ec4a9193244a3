"""Saving a document's next version on the real FerretDB v1 (whose conditional updates are not
atomic): one writer of each version, a dead writer's claim rolled forward, a stale reader
refused."""

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.version_claims import VersionTaken, claim_id, save_next_version

DOCS = "versioned_things"


async def a_document(database: AsyncDatabase) -> dict[str, Any]:
    document = {"_id": "thing_1", "value": "first", "version": 1}
    await database[DOCS].insert_one(document)
    return document


def next_of(document: dict[str, Any], value: str) -> dict[str, Any]:
    return {**document, "value": value, "version": document["version"] + 1}


async def test_of_writers_racing_from_one_version_exactly_one_saves_and_its_write_is_what_stays(
    database: AsyncDatabase,
) -> None:
    current = await a_document(database)
    for n in range(20):
        outcomes = await asyncio.gather(
            *(
                save_next_version(database[DOCS], current, next_of(current, f"{n}-{w}"))
                for w in "ab"
            ),
            return_exceptions=True,
        )
        saved = [o for o in outcomes if isinstance(o, dict)]
        refused = [o for o in outcomes if isinstance(o, VersionTaken)]
        assert len(saved) == 1 and len(refused) == 1, outcomes
        assert refused[0].current == current["version"] + 1
        stored = await database[DOCS].find_one({"_id": "thing_1"})
        assert stored is not None and stored == saved[0], "the one that answered saved is stored"
        current = stored  # the next round races from the version just saved
    claims = await database[f"{DOCS}_versions"].find({}).to_list(None)
    assert len(claims) == 20 and all("document" not in c for c in claims), (
        "written claims keep no copy"
    )


async def test_a_writer_that_died_after_its_claim_is_rolled_forward_by_the_next_one(
    database: AsyncDatabase,
) -> None:
    current = await a_document(database)
    orphan = next_of(current, "claimed, never written")
    await database[f"{DOCS}_versions"].insert_one(
        {"_id": claim_id("thing_1", 2), "document_id": "thing_1", "version": 2, "document": orphan}
    )
    with pytest.raises(VersionTaken) as taken:
        await save_next_version(database[DOCS], current, next_of(current, "late"))
    assert taken.value.current == 2
    assert await database[DOCS].find_one({"_id": "thing_1"}) == orphan
    fresh = await database[DOCS].find_one({"_id": "thing_1"})
    assert fresh is not None
    assert (await save_next_version(database[DOCS], fresh, next_of(fresh, "next")))["version"] == 3


async def test_a_writer_that_read_an_older_version_is_refused_even_after_claims_were_written(
    database: AsyncDatabase,
) -> None:
    first = await a_document(database)
    second = await save_next_version(database[DOCS], first, next_of(first, "second"))
    await save_next_version(database[DOCS], second, next_of(second, "third"))
    with pytest.raises(VersionTaken) as taken:
        await save_next_version(database[DOCS], first, next_of(first, "stale"))
    assert taken.value.current == 3
    assert (await database[DOCS].find_one({"_id": "thing_1"}))["value"] == "third"


async def test_a_deleted_document_is_reported_gone(database: AsyncDatabase) -> None:
    current = await a_document(database)
    await database[DOCS].delete_one({"_id": "thing_1"})
    with pytest.raises(VersionTaken) as taken:
        await save_next_version(database[DOCS], current, next_of(current, "after delete"))
    assert taken.value.current is None
    assert await database[DOCS].find_one({"_id": "thing_1"}) is None
    assert await database[f"{DOCS}_versions"].count_documents({}) == 0, "no copy left behind"
