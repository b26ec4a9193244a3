"""Session and turn records: written to MongoDB without ever blocking or losing a conversation.

The writing itself is agent_configs.writer's no-loss writer (ordered queue, retries, dead
letters, spool and replay); this module says what the worker writes (its collections, its
metrics) and holds the worker's own database chores: indexes, the heartbeat, the sweep.
"""

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from agent_configs.database import open_client
from agent_configs.writer import DEAD_LETTERS, NoLossWriter, Record, WriterObserver, ensure_dead_letter_indexes
from worker import metrics

__all__ = ["DEAD_LETTERS", "EVENTS", "RECORD_COLLECTIONS", "SESSIONS", "TURNS", "Record", "RecordWriter"]

logger = logging.getLogger("switchboard.records")

SESSIONS = "sessions"
TURNS = "turns"
EVENTS = "events"  # the audit trail the admin API shows; admin actions write there too
MAINTENANCE = "worker_maintenance"
STALE_SWEEP = "stale_sessions"
RECORD_COLLECTIONS = frozenset({SESSIONS, TURNS, EVENTS})
"""What the worker's records (and their replay) may write: a spool line naming any other
collection (`api_keys`, say) is quarantined, not written."""


class _WorkerMetrics(WriterObserver):
    def backlog(self, records: int) -> None:
        metrics.RECORDS_BUFFERED.set(records)

    def retried(self) -> None:
        metrics.RECORD_WRITE_RETRIES.inc()

    def spooled(self, records: int) -> None:
        metrics.RECORDS_SPOOLED.inc(records)

    def dead_lettered(self, kind: str) -> None:
        metrics.RECORDS_DEAD_LETTERED.labels(kind).inc()


class RecordWriter(NoLossWriter):
    """The worker's writer: sessions, turns and session events, counted in the worker's metrics."""

    def __init__(
        self,
        database: AsyncDatabase,
        spool_dir: Path,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
        **options: Any,
    ) -> None:
        super().__init__(
            database,
            spool_dir,
            collections=RECORD_COLLECTIONS,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            observer=_WorkerMetrics(),
            **options,
        )


async def ensure_record_indexes(database: AsyncDatabase) -> None:
    """What the worker and the admin API query by: a session's turns, a user's memory,
    active sessions to sweep, the audit trail."""
    await database[TURNS].create_index([("session_id", 1), ("turn_index", 1)])
    await database[TURNS].create_index([("agent_id", 1), ("user_id", 1), ("created_at", -1)])
    await database[SESSIONS].create_index([("status", 1), ("heartbeat_at", 1)])
    await database[SESSIONS].create_index([("room", 1)])
    await database[EVENTS].create_index([("at", -1)])
    await ensure_dead_letter_indexes(database)


async def ensure_record_indexes_at(mongo_uri: str, database_name: str, timeout_ms: int) -> None:
    client = open_client(mongo_uri, timeout_ms)
    try:
        await ensure_record_indexes(client[database_name])
    except PyMongoError as exc:
        logger.warning("record indexes not ensured (database unreachable?): %s", type(exc).__name__)
    finally:
        await client.close()


async def write_heartbeat(database: AsyncDatabase, session_id: str, timeout_s: float) -> bool:
    """Mark a session alive, directly and within `timeout_s`: not through the record queue,
    where it waited behind every record a slow or absent database had piled up (and stopped
    for good when the queue's task died), so other workers' sweeps marked live sessions
    aborted. No upsert: a session whose start record is still queued gets its
    `heartbeat_at` from that record. False (logged) when the database did not answer."""
    try:
        # pymongo's deadline, not asyncio.timeout: on Python 3.11 a task cancel that lands as an
        # asyncio.timeout expires turns into a TimeoutError, and the heartbeat task never ended
        with pymongo.timeout(timeout_s):
            await database[SESSIONS].update_one({"_id": session_id}, {"$set": {"heartbeat_at": datetime.now(UTC)}})
        return True
    except PyMongoError as exc:
        logger.warning("heartbeat of %s not written: %s", session_id, type(exc).__name__)
        return False


async def sweep_is_due(database: AsyncDatabase, every_s: float) -> bool:
    """At most one stale-session sweep per `every_s` across all workers: a scan of `sessions`
    at every job start grew to hundreds of ms per job with a few thousand sessions (FerretDB),
    paid by every room. The job that moves the shared marker forward runs the sweep."""
    now = datetime.now(UTC)
    try:
        result = await database[MAINTENANCE].update_one(
            {"_id": STALE_SWEEP, "swept_at": {"$lt": now - timedelta(seconds=every_s)}},
            {"$set": {"swept_at": now}},
            upsert=True,
        )
    except DuplicateKeyError:  # the marker exists and is recent: the upsert tried to add another
        return False
    return result.modified_count == 1 or result.upserted_id is not None


async def abort_stale_sessions(database: AsyncDatabase, stale_after_s: float) -> int:
    """Sessions whose worker died (kill -9, node loss) stop heart-beating and never write
    their end: mark them `aborted`, so no session is silently missing an outcome."""
    now = datetime.now(UTC)
    result = await database[SESSIONS].update_many(
        {"status": "active", "heartbeat_at": {"$lt": now - timedelta(seconds=stale_after_s)}},
        {"$set": {"status": "aborted", "end_reason": "worker_lost", "ended_at": now}},
    )
    if result.modified_count:
        logger.warning("marked %d sessions of lost workers as aborted", result.modified_count)
    return result.modified_count


async def replay_spool(database: AsyncDatabase, spool_dir: Path) -> int:
    """Write spooled records back (see NoLossWriter.replay: record by record, bad files and
    lines quarantined, orphans of dead processes picked up, only RECORD_COLLECTIONS). The dead
    letters it finds are written, or spooled again, before it returns."""
    writer = RecordWriter(database, spool_dir)
    try:
        return await writer.replay()
    finally:
        await writer.close(deadline_s=5.0)
