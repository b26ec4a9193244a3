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

from agent_configs.cloudevents import (
    LAST_SEQ,
    OUTBOX,
    EventType,
    ensure_outbox_indexes,
    outbox_record,
    session_event,
    session_report_data,
)
from agent_configs.database import open_client
from agent_configs.writer import (
    DEAD_LETTERS,
    CountingObserver,
    NoLossWriter,
    Record,
    ensure_dead_letter_indexes,
)
from worker import metrics

__all__ = [
    "DEAD_LETTERS",
    "EVENTS",
    "OUTBOX",
    "RECORD_COLLECTIONS",
    "SESSIONS",
    "TURNS",
    "Record",
    "RecordWriter",
    "outbox_record",
]

logger = logging.getLogger("switchboard.records")

SESSIONS = "sessions"
TURNS = "turns"
EVENTS = "events"  # the audit trail the admin API shows; admin actions write there too
MAINTENANCE = "worker_maintenance"
STALE_SWEEP = "stale_sessions"
HEARTBEATS = (
    "session_heartbeats"  # one document per live session, written by its heartbeat task only
)
RECORD_COLLECTIONS = frozenset({SESSIONS, TURNS, EVENTS, OUTBOX})
"""What the worker's records (and their replay) may write: a spool line naming any other
collection (`api_keys`, say) is quarantined, not written. `outbox` holds the CloudEvents the
dispatcher delivers (agent_configs/cloudevents.py): written through the same queue, after the
records they describe, so a session's events are spooled and replayed with its records."""


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
            observer=CountingObserver(
                metrics.RECORDS_BUFFERED,
                metrics.RECORD_WRITE_RETRIES,
                metrics.RECORDS_SPOOLED,
                metrics.RECORDS_DEAD_LETTERED,
            ),
            **options,
        )


async def ensure_record_indexes(database: AsyncDatabase) -> None:
    """What the worker and the admin API query by: a session's turns, a user's memory,
    active sessions to sweep, the audit trail."""
    await database[TURNS].create_index([("session_id", 1), ("turn_index", 1)])
    await database[TURNS].create_index([("agent_id", 1), ("user_id", 1), ("created_at", -1)])
    await database[SESSIONS].create_index([("status", 1), ("started_at", 1)])
    await database[HEARTBEATS].create_index([("beat_at", 1)])
    await database[SESSIONS].create_index([("room", 1)])
    await database[EVENTS].create_index([("at", -1)])
    await ensure_outbox_indexes(database)
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
    """Mark a session alive, directly and within `timeout_s`, in its own document of
    `session_heartbeats`, never in the session record.

    Not through the record queue: there a beat waited behind every record a slow or absent
    database had piled up, and other workers' sweeps marked live sessions aborted. Not in the
    session record either: FerretDB v1 applies an update as read, change, write back, so a beat
    racing the record's first upsert wrote back a document with nothing but `heartbeat_at`
    (measured: 1 room in 30 under load lost its record), and one racing the end record could
    have put `active` back. This document has one writer, the session's heartbeat task.
    False (logged) when the database did not answer."""
    try:
        # pymongo's deadline, not asyncio.timeout: on Python 3.11 a task cancel that lands as an
        # asyncio.timeout expires turns into a TimeoutError, and the heartbeat task never ended
        with pymongo.timeout(timeout_s):
            await database[HEARTBEATS].update_one(
                {"_id": session_id}, {"$set": {"beat_at": datetime.now(UTC)}}, upsert=True
            )
        return True
    except PyMongoError as exc:
        logger.warning("heartbeat of %s not written: %s", session_id, type(exc).__name__)
        return False


async def forget_heartbeat(database: AsyncDatabase, session_id: str) -> None:
    """The session ended: its beat goes (a beat left behind, the database away, is removed by
    the next sweep once it is stale)."""
    try:
        with pymongo.timeout(2.0):
            await database[HEARTBEATS].delete_one({"_id": session_id})
    except PyMongoError as exc:
        logger.info(
            "heartbeat of %s not removed (the sweep will): %s", session_id, type(exc).__name__
        )


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
    their end: mark them `aborted`, so no session is silently missing an outcome, and put a
    `session.aborted` event in the outbox for each.

    Stale: active, started before the cutoff, and no beat since (none at all counts: a job
    killed before its first beat, or a start record replayed from a dead worker's spool).
    The candidates are the ids of the active sessions older than the cutoff (index status +
    started_at; ended ones are never scanned, transcripts never read), their beats read in
    one query; only a stale session's record is read whole.

    The event goes first (an insert-only upsert on `<session_id>:aborted`, so two sweeps, or
    one retried, leave one event and never reset its `fanned_out`), then the session is
    marked: a sweep that dies in between leaves the session active, and the next sweep finds
    it again. Its data is what the session record held at the last message, with its turns.
    Beats older than the cutoff are removed last: their sessions are ended or aborted now."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=stale_after_s)
    old = {"status": "active", "started_at": {"$lt": cutoff}}
    candidates = [s["_id"] for s in await database[SESSIONS].find(old, {"_id": 1}).to_list(None)]
    beats: dict[Any, Any] = {}
    if candidates:
        async for beat in database[HEARTBEATS].find({"_id": {"$in": candidates}}):
            beats[beat["_id"]] = beat.get("beat_at")
    aborted = 0
    for session_id in candidates:
        beat_at = _utc(beats.get(session_id))
        if beat_at is not None and beat_at >= cutoff:
            continue
        session = await database[SESSIONS].find_one({"_id": session_id, "status": "active"})
        if session is None:  # it ended meanwhile
            continue
        event = await _aborted_event(database, session, now, beat_at)
        fields = {key: value for key, value in event.items() if key != "_id"}
        await database[OUTBOX].update_one(
            {"_id": event["_id"]}, {"$setOnInsert": fields}, upsert=True
        )
        result = await database[SESSIONS].update_one(
            {"_id": session["_id"], "status": "active"},
            {"$set": {"status": "aborted", "end_reason": "worker_lost", "ended_at": now}},
        )
        aborted += result.modified_count
    await database[HEARTBEATS].delete_many({"beat_at": {"$lt": cutoff}})
    if aborted:
        logger.warning("marked %d sessions of lost workers as aborted", aborted)
    return aborted


async def _aborted_event(
    database: AsyncDatabase, session: dict[str, Any], now: datetime, last_beat_at: datetime | None
) -> dict[str, Any]:
    session_id = str(session["_id"])
    turns = [
        _turn_in_report(turn)
        async for turn in database[TURNS].find({"session_id": session_id}).sort("turn_index", 1)
    ]
    data = session_report_data(
        session_id=session_id,
        room=session.get("room", ""),
        agent_id=session.get("agent_id", ""),
        agent_version=session.get("agent_version", 0),
        user_id=session.get("user_id"),
        started_at=_utc(session.get("started_at")),
        ended_at=now,
        end_reason="worker_lost",
        end_detail=None,
        summary=None,
        transcript=session.get("transcript") or [],
        transcript_dropped=session.get("transcript_dropped", 0),
        turns=turns,
        usage={"prompt_tokens": 0, "completion_tokens": 0},  # counted in the lost process only
        routing=session.get("routing"),
        handoffs=session.get("handoffs") or [],
        escalations=session.get("escalations") or [],
    )
    data["last_heartbeat_at"] = last_beat_at
    # The lost session's own trace (its start record kept it), never the sweeping session's.
    return session_event(
        EventType.SESSION_ABORTED,
        session_id,
        data["agent_id"] or None,
        "aborted",
        LAST_SEQ,
        data,
        traceparent=session.get("traceparent") or "",
    )


def _turn_in_report(turn: dict[str, Any]) -> dict[str, Any]:
    """A stored turn as the report lists it (the shape of `turn_data`)."""
    return {
        "session_id": turn.get("session_id"),
        "turn_index": turn.get("turn_index"),
        "agent_id": turn.get("agent_id"),
        "agent_version": turn.get("agent_version"),
        "user_id": turn.get("user_id"),
        "user_text": turn.get("user_text"),
        "user_text_truncated": bool(turn.get("user_text_truncated")),
        "reply": turn.get("reply"),
        "status": turn.get("status"),
        "fields": turn.get("fields") or {},
        "tool_calls": turn.get("tool_calls") or [],
        "latency_ms": turn.get("latency_ms") or {},
        "latency_from": turn.get("latency_from"),
    }


def _utc(at: Any) -> datetime | None:
    """A datetime read back from MongoDB (naive, UTC) made aware; anything else None."""
    if not isinstance(at, datetime):
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


REPLAY_BUDGET_S = 15.0
"""No spool file is begun after this long in one job's replay: its end waits for the replay
(`_RunningSession.finish`), and a job process has SHUTDOWN_PROCESS_TIMEOUT_S to end."""


async def replay_spool(database: AsyncDatabase, spool_dir: Path) -> int:
    """Write spooled records back (see NoLossWriter.replay: this process's spool and that of
    every process that is gone, in this pod or another on the shared volume; record by record,
    bad files and lines quarantined, only RECORD_COLLECTIONS), within REPLAY_BUDGET_S. The dead
    letters it finds are written, or spooled again, before it returns."""
    writer = RecordWriter(database, spool_dir)
    try:
        return await writer.replay(budget_s=REPLAY_BUDGET_S)
    finally:
        await writer.close(deadline_s=5.0)
