"""The stale-session sweep runs at most once per interval across all workers, not at every
job start: real MongoDB-wire database."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from worker.records import HEARTBEATS, SESSIONS, abort_stale_sessions, sweep_is_due


async def test_one_sweep_per_interval(database: AsyncDatabase) -> None:
    """Due again once the interval has passed, never before. The "not due" checks ask with a
    long interval: with 0.5 s a slow round trip on a loaded machine would make them lie."""
    before = time.monotonic()
    assert await sweep_is_due(database, every_s=0.5) is True  # the very first job start
    assert await sweep_is_due(database, every_s=60) is False
    assert await sweep_is_due(database, every_s=60) is False
    while not await sweep_is_due(database, every_s=0.5):
        assert time.monotonic() - before < 30, "the sweep never came due again"
        await asyncio.sleep(0.05)  # the clock is the event: poll it
    assert time.monotonic() - before >= 0.5, "due again before the interval had passed"
    assert await sweep_is_due(database, every_s=60) is False


async def test_the_sweep_aborts_only_silent_sessions(database: AsyncDatabase) -> None:
    now = datetime.now(UTC)
    long_ago = now - timedelta(seconds=120)
    await database[SESSIONS].insert_many(
        [
            {"_id": "lost", "status": "active", "started_at": long_ago},
            {
                "_id": "never-beat",
                "status": "active",
                "started_at": long_ago,
            },  # killed before its first beat
            {"_id": "alive", "status": "active", "started_at": long_ago},
            {
                "_id": "just-started",
                "status": "active",
                "started_at": now,
            },  # its first beat is on the way
            {"_id": "ended", "status": "ended", "started_at": long_ago},
        ]
    )
    await database[HEARTBEATS].insert_many(
        [
            {"_id": "lost", "beat_at": long_ago},
            {"_id": "alive", "beat_at": now},
            {"_id": "ended", "beat_at": long_ago},  # its removal at the end failed
        ]
    )
    assert await abort_stale_sessions(database, stale_after_s=60) == 2
    statuses = {
        d["_id"]: (d["status"], d.get("end_reason")) async for d in database[SESSIONS].find()
    }
    assert statuses == {
        "lost": ("aborted", "worker_lost"),
        "never-beat": ("aborted", "worker_lost"),
        "alive": ("active", None),
        "just-started": ("active", None),
        "ended": ("ended", None),
    }
    assert {d["_id"] async for d in database[HEARTBEATS].find()} == {"alive"}, (
        "stale beats are removed"
    )
