"""Session and turn records: written to MongoDB without ever blocking or losing a conversation.

Every record is an idempotent upsert (`_id` + `$set`), so writing one twice is harmless. Writes
go through a queue drained by one background task; while MongoDB is unreachable, records wait
in memory and are retried with backoff. When the job ends, `close()` flushes what it can within
a deadline and spools the rest to a JSONL file that the worker replays at its next start.
"""

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import json_util
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from agent_configs.database import open_client
from worker import metrics

logger = logging.getLogger("switchboard.records")

SESSIONS = "sessions"
TURNS = "turns"
EVENTS = "events"  # the audit trail the admin API shows; admin actions write there too
MAINTENANCE = "worker_maintenance"
STALE_SWEEP = "stale_sessions"
MAX_BUFFERED = 10_000


@dataclass(frozen=True)
class Record:
    collection: str
    record_id: str
    fields: dict[str, Any]

    def to_json(self) -> str:
        return json_util.dumps(
            {"collection": self.collection, "record_id": self.record_id, "fields": self.fields}
        )

    @classmethod
    def from_json(cls, line: str) -> "Record":
        data = json_util.loads(line)
        return cls(data["collection"], data["record_id"], data["fields"])


async def ensure_record_indexes(database: AsyncDatabase) -> None:
    """What the worker and the admin API query by: a session's turns, a user's memory,
    active sessions to sweep, the audit trail."""
    await database[TURNS].create_index([("session_id", 1), ("turn_index", 1)])
    await database[TURNS].create_index([("agent_id", 1), ("user_id", 1), ("created_at", -1)])
    await database[SESSIONS].create_index([("status", 1), ("heartbeat_at", 1)])
    await database[SESSIONS].create_index([("room", 1)])
    await database[EVENTS].create_index([("at", -1)])


async def ensure_record_indexes_at(mongo_uri: str, database_name: str, timeout_ms: int) -> None:
    client = open_client(mongo_uri, timeout_ms)
    try:
        await ensure_record_indexes(client[database_name])
    except PyMongoError as exc:
        logger.warning("record indexes not ensured (database unreachable?): %s", type(exc).__name__)
    finally:
        await client.close()


async def write_record(database: AsyncDatabase, record: Record) -> None:
    await database[record.collection].update_one(
        {"_id": record.record_id}, {"$set": record.fields}, upsert=True
    )


class RecordWriter:
    def __init__(
        self,
        database: AsyncDatabase,
        spool_dir: Path,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
    ) -> None:
        self._database = database
        self._spool_dir = spool_dir
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._pending: asyncio.Queue[Record] = asyncio.Queue()
        self._overflow: list[Record] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, record: Record) -> None:
        """Queue a record; returns at once. Starts the writer task on first use."""
        if self._pending.qsize() >= MAX_BUFFERED:
            self._overflow.append(record)
        else:
            self._pending.put_nowait(record)
        metrics.RECORDS_BUFFERED.set(self._pending.qsize() + len(self._overflow))
        if self._task is None:
            self._task = asyncio.create_task(self._drain_forever(), name="switchboard.records")

    @property
    def backlog(self) -> int:
        return self._pending.qsize() + len(self._overflow)

    async def close(self, deadline_s: float = 10.0) -> Path | None:
        """Flush within `deadline_s`; spool whatever is left. Returns the spool file, if any."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        left = self._take_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        while left and loop.time() < deadline:
            try:
                await asyncio.wait_for(write_record(self._database, left[0]), deadline - loop.time())
                left.pop(0)
            except (PyMongoError, TimeoutError):
                await asyncio.sleep(min(self._retry_initial_s, max(0.0, deadline - loop.time())))
        metrics.RECORDS_BUFFERED.set(0)
        return self._spool(left) if left else None

    def _take_all(self) -> list[Record]:
        records = []
        while not self._pending.empty():
            records.append(self._pending.get_nowait())
        records.extend(self._overflow)
        self._overflow.clear()
        return records

    async def _drain_forever(self) -> None:
        delay = self._retry_initial_s
        while True:
            record = await self._pending.get()
            while True:
                try:
                    await write_record(self._database, record)
                    delay = self._retry_initial_s
                    break
                except PyMongoError as exc:
                    metrics.RECORD_WRITE_RETRIES.inc()
                    logger.warning("record write failed, retrying in %.1fs: %s", delay, type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_s)
            if self._overflow:
                self._pending.put_nowait(self._overflow.pop(0))
            metrics.RECORDS_BUFFERED.set(self.backlog)

    def _spool(self, records: list[Record]) -> Path:
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        path = self._spool_dir / f"records-{uuid.uuid4().hex}.jsonl"
        temporary = path.with_suffix(".partial")
        temporary.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
        temporary.rename(path)  # a reader never sees half a file
        metrics.RECORDS_SPOOLED.inc(len(records))
        logger.error("MongoDB unreachable at exit: %d records spooled to %s", len(records), path)
        return path


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
    """Write spooled records back. A file is first claimed by renaming it, so two job
    processes never replay the same file; it is deleted only once all its records are in,
    and put back for the next try if the database fails midway."""
    replayed = 0
    for path in sorted(spool_dir.glob("records-*.jsonl")):
        claimed = path.with_suffix(f".replaying-{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another process claimed it first
        try:
            records = [Record.from_json(line) for line in claimed.read_text().splitlines() if line]
            for record in records:
                await write_record(database, record)
        except BaseException:
            claimed.rename(path)
            raise
        claimed.unlink()
        replayed += len(records)
    if replayed:
        logger.info("replayed %d spooled records from %s", replayed, spool_dir)
    return replayed
