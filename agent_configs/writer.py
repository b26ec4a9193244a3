"""The one no-loss writer: records (and, later, the events outbox) reach MongoDB or a file.

Every record is an idempotent upsert (`_id` + `$set`), so writing one twice is harmless. Writes
go through an ordered queue drained by one background task that never dies; the record being
written stays at the head of the queue until it is done, so `close()` never drops it. What
happens to a write that fails depends on why (`classify`):

- transient (connection refused, timeouts, NotPrimary, a closed client, a duplicate-key race of
  two upserts): retried with exponential backoff for as long as the database is away. A record
  that keeps failing "transiently" while the database answers a ping is the record's fault
  (FerretDB v1 drops the connection on a NaN, measured) and is dead-lettered after
  `probe_after` tries and three such pings;
- rejected by the server (a WriteError such as FerretDB's "nested arrays are not supported"):
  retried `rejected_tries` times, one `retry_initial_s` apart, then dead-lettered;
- unencodable (DocumentTooLarge, InvalidDocument, BSON's OverflowError, UnicodeEncodeError, any
  other exception while encoding): dead-lettered at once, retrying cannot help.

A dead letter is never lost: the whole record goes to `dead-<id>.json` in the spool directory
(0600), and a document with the reason, a bounded preview and that file's name goes to the
`dead_letters` collection through the same queue (so it is spooled too if the database is
down). The records behind a dead letter are written as usual.

Before a record is written its values are made storable (`storable`): what MongoDB or
FerretDB v1 refuse is changed, not dropped (ints beyond int64 and NaN/Infinity become strings,
lone surrogates U+FFFD, keys with '.'/'$' or non-str keys safe, arrays inside arrays JSON text).
A document whose BSON exceeds `max_document_bytes` (MongoDB's 16 MiB, less headroom) is
dead-lettered whole to disk, never silently dropped.

`close()` writes what it can within a deadline and spools the rest, in order, to a JSONL file
in this process's own directory of the spool root (agent_configs/spool.py), flushed to disk
before it is named; `replay()` writes spool files back record by record: this process's own,
those of every process that is gone (adopted: one process at a time, whichever pod it ran in,
when the root is a volume they share), and files put in the root itself (by hand, or by a
version before per-process directories). The spool root is private: created 0700, refused when
group/world writable or owned by another user (a private fallback is used instead); spool and
dead-letter files are created 0600. Dead letters and quarantined files stay in the root. Replay
writes only the writer's own collections, quarantines unreadable files and lines (kept whole,
described in `dead_letters`) instead of stopping at them, and picks up files a dead process
left half-done.

This module imports nothing of the worker or the admin API: both use it.
"""

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import socket
import stat
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import bson
import pymongo
from bson import json_util
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    WTimeoutError,
)

from agent_configs import spool, telemetry

logger = logging.getLogger("switchboard.writer")
_tracer = telemetry.tracer("switchboard.records")

DEAD_LETTERS = "dead_letters"
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 - 64 * 1024  # MongoDB's 16 MiB, less room for _id and merge
PREVIEW_CHARS = 2000
POISON_STRIKES = 3
MAX_DEPTH = 50  # MongoDB refuses documents nested deeper than 100; FerretDB v1 took 200 (measured)
INT64 = (-(2**63), 2**63 - 1)
ORPHAN_AFTER_S = 900.0  # a claim this old whose pid lives is a reused pid: no replay takes 15 min
PARTIAL_AFTER_S = 60.0  # a spool file is written and renamed within milliseconds
# Server error codes that say "try again later", not "this record is wrong".
TRANSIENT_CODES = frozenset(
    {6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 46, 24, 63, 150}
)


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


# -- values MongoDB (and FerretDB v1) can store ---------------------------------------------


def storable(fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`fields` with every value MongoDB or FerretDB v1 would refuse replaced, and how many were.

    Top-level keys are `$set` paths written by our code and stay as they are (a dotted one
    means a nested field); keys below them come from model output and are made safe. Measured
    on FerretDB v1.24: an int beyond int64 is BSON's OverflowError, a lone surrogate a
    UnicodeEncodeError, a non-str key InvalidDocument, a key with '.' or a leading '$' a
    WriteError, +Inf a WriteError, an array inside an array a WriteError, and a NaN closes the
    connection ("NaN is not supported"), so it looks like an outage. Unknown types are left
    alone: encoding them fails and the record is dead-lettered, visibly."""
    changes = [0]
    clean = {
        (_clean_str(k, changes) if isinstance(k, str) else k): _value(v, 1, changes, False)
        for k, v in fields.items()
    }
    return clean, changes[0]


def _value(value: Any, depth: int, changes: list[int], in_array: bool) -> Any:
    if isinstance(value, str):
        return _clean_str(value, changes)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return value
        changes[0] += 1
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        changes[0] += 1
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list | tuple | set | frozenset) and depth >= MAX_DEPTH:
        changes[0] += 1
        return _as_json_text(value, changes)
    if isinstance(value, dict):
        return _mapping(value, depth, changes)
    if isinstance(value, list | tuple | set | frozenset):
        if in_array:  # FerretDB v1: "nested arrays are not supported"
            changes[0] += 1
            return _as_json_text(list(value), changes)
        if not isinstance(value, list):
            changes[0] += 1
        return [_value(item, depth + 1, changes, True) for item in value]
    if isinstance(value, Decimal | uuid.UUID):
        changes[0] += 1
        return str(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        changes[0] += 1
        return value.isoformat()
    return value


def _mapping(value: dict[Any, Any], depth: int, changes: list[int]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, item in value.items():
        safe = _safe_key(key, changes)
        while safe in clean:  # two keys that became the same: keep both
            safe += "~"
        clean[safe] = _value(item, depth + 1, changes, False)
    return clean


def _safe_key(key: Any, changes: list[int]) -> str:
    text = key if isinstance(key, str) else str(key)
    text = _clean_str(text, changes)
    safe = text.replace(".", "\uff0e").replace("\x00", "\ufffd")
    if safe.startswith("$"):
        safe = "\uff04" + safe[1:]
    if safe != key:
        changes[0] += 1
    return safe


def _clean_str(text: str, changes: list[int]) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        changes[0] += 1
        # utf-16 with surrogatepass joins a pair written as two code points and turns a lone one
        # into U+FFFD on the way back
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _as_json_text(value: Any, changes: list[int]) -> str:
    try:
        return json.dumps(value, default=str, allow_nan=True)  # ascii: surrogates are escaped
    except (RecursionError, ValueError, TypeError) as exc:
        return f"<not storable: {type(exc).__name__}>"


# -- why a write failed --------------------------------------------------------------------


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    REJECTED = "rejected"
    UNENCODABLE = "unencodable"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    error: str  # the exception's type name
    detail: str

    @classmethod
    def of(cls, kind: FailureKind, exc: BaseException) -> "Failure":
        return cls(kind, type(exc).__name__, str(exc).split("full error")[0].strip()[:500])


def classify(exc: BaseException) -> FailureKind:
    """What a failed `update_one` means for the record (see the module docstring)."""
    if isinstance(
        exc, DocumentTooLarge | bson.errors.InvalidDocument | OverflowError | UnicodeError
    ):
        return FailureKind.UNENCODABLE
    if isinstance(
        exc, ConnectionFailure | ExecutionTimeout | WTimeoutError | InvalidOperation | TimeoutError
    ):
        return FailureKind.TRANSIENT
    if isinstance(exc, DuplicateKeyError):  # two upserts of one _id raced: the retry updates
        return FailureKind.TRANSIENT
    if isinstance(exc, OperationFailure):
        if exc.code in TRANSIENT_CODES or exc.has_error_label("RetryableWriteError"):
            return FailureKind.TRANSIENT
        return FailureKind.REJECTED
    return FailureKind.REJECTED


# -- the private spool directory -----------------------------------------------------------


def private_dir(path: Path) -> str | None:
    """Make `path` a directory only this user can use; None if it is one, else why not.

    Created 0700. An existing one owned by us with group/other read (the old 0755 default) is
    tightened to 0700; one that is a symlink, owned by someone else, or group/world writable is
    refused: anyone who could write there could have planted records to replay."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot create it: {exc}"
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        return "it is not a directory (or is a symlink)"
    if info.st_uid != os.geteuid():
        return f"it is owned by uid {info.st_uid}, not by this user ({os.geteuid()})"
    if info.st_mode & 0o022:
        return f"it is group or world writable ({stat.filemode(info.st_mode)})"
    if info.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            return f"cannot make it private: {exc}"
    return None


_resolved: dict[Path, Path] = {}


def safe_spool_dir(configured: Path) -> Path:
    """`configured` if it is (or can be made) private; otherwise, with an error in the log, a
    per-user directory beside it in the temp dir, or a fresh private temp dir as the last
    resort. Decided once per process and path."""
    if configured in _resolved:
        return _resolved[configured]
    candidates = [configured, Path(tempfile.gettempdir()) / f"switchboard-spool-{os.geteuid()}"]
    chosen: Path | None = None
    for candidate in candidates:
        problem = private_dir(candidate)
        if problem is None:
            chosen = candidate
            break
        logger.error("spool directory %s refused: %s", candidate, problem)
    if chosen is None:
        chosen = Path(tempfile.mkdtemp(prefix="switchboard-spool-"))  # 0700, ours, new
        logger.error("spooling to the private directory %s instead", chosen)
    _resolved[configured] = chosen
    return chosen


def _write_private(path: Path, text: str) -> None:
    """Create `path` 0600 (never through a symlink, never over an existing file), its content
    on disk before this returns: the caller renames it into place, and a pod may be gone next."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _json_text(value: Any) -> str:
    """JSON of anything: what json_util cannot write becomes its repr (a dead letter must
    always reach its file)."""
    try:
        return json_util.dumps(value)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return json_util.dumps(_reprs(value))


def _reprs(value: Any, depth: int = 0) -> Any:
    if depth > 200:
        return "<too deep>"
    if isinstance(value, dict):
        return {str(k): _reprs(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reprs(v, depth + 1) for v in value]
    try:
        json_util.dumps(value)
        return value
    except (TypeError, ValueError, OverflowError, RecursionError):
        return repr(value)


# -- the writer ----------------------------------------------------------------------------


class WriterObserver:
    """Hooks for metrics; the worker and the admin API each count in their own registry."""

    def backlog(self, records: int) -> None: ...

    def retried(self) -> None: ...

    def spooled(self, records: int) -> None: ...

    def dead_lettered(self, kind: str) -> None: ...


class CountingObserver(WriterObserver):
    """The hooks counted in four Prometheus metrics the caller owns (the worker's records and
    the admin API's outbox each have their own names and registry): a gauge for the backlog,
    counters for retries and spooled records, and one labelled by kind for dead letters."""

    def __init__(self, backlog: Any, retries: Any, spooled: Any, dead_lettered: Any) -> None:
        self._backlog, self._retries, self._spooled, self._dead_lettered = (
            backlog,
            retries,
            spooled,
            dead_lettered,
        )

    def backlog(self, records: int) -> None:
        self._backlog.set(records)

    def retried(self) -> None:
        self._retries.inc()

    def spooled(self, records: int) -> None:
        self._spooled.inc(records)

    def dead_lettered(self, kind: str) -> None:
        self._dead_lettered.labels(kind).inc()


class NoLossWriter:
    """`submit(Record(...))` returns at once; `close()` flushes within a deadline and spools the
    rest; `replay()` writes spooled records back. Only `collections` (and `dead_letters`) are
    written, by `submit` as by `replay`."""

    def __init__(
        self,
        database: AsyncDatabase,
        spool_dir: Path,
        *,
        collections: Iterable[str],
        dead_letters: str = DEAD_LETTERS,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
        rejected_tries: int = 3,
        probe_after: int = 5,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
        observer: WriterObserver | None = None,
    ) -> None:
        self._database = database
        self._configured_spool = spool_dir
        self._dead_letters = dead_letters
        self._collections = frozenset(collections) | {dead_letters}
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._rejected_tries = rejected_tries
        self._probe_after = probe_after
        self._max_document_bytes = max_document_bytes
        self._observer = observer or WriterObserver()
        self._queue: deque[Record] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._delay = retry_initial_s
        self._attempts = 0  # of the record at the head of the queue
        self._strikes = 0  # its transient failures right before a ping that succeeded
        self._closing = False  # close() drains the queue itself: no writer task meanwhile

    @property
    def collections(self) -> frozenset[str]:
        return self._collections

    @property
    def spool_dir(self) -> Path:
        return safe_spool_dir(self._configured_spool)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def submit(self, record: Record) -> None:
        """Queue a record; returns at once. Starts (or restarts) the writer task."""
        if record.collection not in self._collections:
            raise ValueError(f"this writer does not write to {record.collection!r}")
        self._enqueue(record)

    def _enqueue(self, record: Record) -> None:
        self._queue.append(record)
        self._wake.set()
        self._observer.backlog(len(self._queue))
        if not self._closing and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain_forever(), name="switchboard.writer")

    async def close(self, deadline_s: float = 10.0) -> Path | None:
        """Write what can be written within `deadline_s`, the record held by the writer task
        included; spool whatever is left, in order. Returns the spool file, if any."""
        self._closing = True
        try:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None
            loop = asyncio.get_running_loop()
            try:
                await self._work(until=loop.time() + deadline_s)
            except Exception:  # never let a bug here cost the records: they are spooled below
                logger.exception("flushing records at close failed")
        finally:
            left = list(self._queue)
            self._queue.clear()
            self._attempts = 0
            self._closing = False
            self._observer.backlog(0)
        return self._spool(left) if left else None  # synchronous: the loop may be ending

    # -- the drain loop

    async def _drain_forever(self) -> None:
        while not self._closing:
            try:
                await self._work(until=None)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop every later write (and the heartbeats)
                logger.exception("record writer failed; it carries on")
                await asyncio.sleep(self._retry_initial_s)

    async def _work(self, until: float | None) -> None:
        """Write the queue in order; with `until`, return when it is empty or the time is up."""
        loop = asyncio.get_running_loop()
        while True:
            if until is None and self._closing:
                return  # even if the cancel of close() was lost on the way
            if not self._queue:
                if until is not None:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            remaining = None if until is None else until - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._step(self._queue[0])
            except TimeoutError:
                return

    async def _step(self, record: Record) -> None:
        # A span per write attempt, in the trace of whoever started the writer's task (a
        # session's, in a worker's job process); a no-op unless traces are exported.
        with _tracer.start_as_current_span(
            "record.write", attributes={"db.collection.name": record.collection}
        ) as span:
            failure = await self._attempt(record)
            if failure is not None and span.is_recording():
                span.set_attribute("switchboard.failure", str(failure.kind))
        if failure is None:
            self._done_with(record)
            self._delay = self._retry_initial_s
            return
        self._attempts += 1
        if await self._gives_up(failure):
            await self._dead_letter(record, failure, self._attempts)
            self._done_with(record)
            return
        self._observer.retried()
        wait = self._delay if failure.kind is FailureKind.TRANSIENT else self._retry_initial_s
        logger.warning(
            "record %s/%s not written (%s %s), retrying in %.1fs",
            record.collection,
            record.record_id,
            failure.kind,
            failure.error,
            wait,
        )
        await asyncio.sleep(wait)
        if failure.kind is FailureKind.TRANSIENT:
            self._delay = min(self._delay * 2, self._retry_max_s)

    def _done_with(self, record: Record) -> None:
        if self._queue and self._queue[0] is record:
            self._queue.popleft()
        self._attempts = self._strikes = 0
        self._observer.backlog(len(self._queue))

    async def _gives_up(self, failure: Failure) -> bool:
        if failure.kind is FailureKind.UNENCODABLE:
            return True
        if failure.kind is FailureKind.REJECTED:
            return self._attempts >= self._rejected_tries
        if self._attempts < self._probe_after:
            return False
        # Three times "failed, yet the database answers": not a write lost in the moment the
        # database came back, but this record.
        self._strikes = self._strikes + 1 if await self._database_answers() else 0
        return self._strikes >= POISON_STRIKES

    async def _database_answers(self) -> bool:
        try:
            # pymongo's own deadline, not asyncio.timeout: on Python 3.11 a cancel (close())
            # landing as an asyncio.timeout expires becomes a TimeoutError, swallowed here
            with pymongo.timeout(2.0):
                await self._database.command("ping")
            return True
        except Exception:
            return False

    async def _attempt(self, record: Record) -> Failure | None:
        """One write of `record`; None when it is in. Never raises (but CancelledError)."""
        try:
            fields, changed = storable(record.fields)
            size = len(bson.encode(fields))
        except Exception as exc:
            return Failure.of(FailureKind.UNENCODABLE, exc)
        if changed:
            logger.warning(
                "record %s/%s: %d value(s) MongoDB cannot store were made storable",
                record.collection,
                record.record_id,
                changed,
            )
        if size > self._max_document_bytes:
            detail = f"{size} bytes of BSON, more than the {self._max_document_bytes} a document may hold"
            return Failure(FailureKind.UNENCODABLE, "DocumentTooLarge", detail)
        try:
            await self._database[record.collection].update_one(
                {"_id": record.record_id}, {"$set": fields}, upsert=True
            )
        except Exception as exc:
            return Failure.of(classify(exc), exc)
        return None

    # -- dead letters

    async def _dead_letter(
        self,
        record: Record,
        failure: Failure,
        attempts: int,
        *,
        letter_id: str | None = None,
        source: str = "writer",
    ) -> None:
        """The whole record to a 0600 file first, then its description into the queue."""
        self._observer.dead_lettered(str(failure.kind))
        if record.collection == self._dead_letters:  # its record is already on disk
            logger.error(
                "dead letter %s not stored in MongoDB (%s): see its file",
                record.record_id,
                failure.detail,
            )
            return
        letter_id = letter_id or f"dl_{uuid.uuid4().hex}"
        at = dt.datetime.now(dt.UTC)
        whole = {
            "collection": record.collection,
            "record_id": record.record_id,
            "fields": record.fields,
            "reason": failure.detail,
            "error": failure.error,
            "at": at,
        }
        text = await asyncio.to_thread(_json_text, whole)
        file_name: str | None = f"dead-{letter_id}.json"
        try:
            await asyncio.to_thread(self._replace_private, f"dead-{letter_id}.json", text)
        except OSError as exc:
            logger.error("dead letter %s could not be written to disk: %s", letter_id, exc)
            file_name = None
        letter = {
            "at": at,
            "collection": record.collection,
            "record_id": record.record_id,
            "kind": str(failure.kind),
            "error": failure.error,
            "reason": failure.detail,
            "attempts": attempts,
            "source": source,
            "size_chars": len(text),
            "preview": text[:PREVIEW_CHARS],  # ASCII: json_util escapes the rest
            "file": file_name,
            "spool_dir": str(self._configured_spool if file_name is None else self.spool_dir),
            "host": socket.gethostname(),
        }
        if file_name is None and len(text) <= PREVIEW_CHARS * 50:
            letter["record_json"] = text  # no disk: MongoDB keeps it whole, when it fits
        self._enqueue(Record(self._dead_letters, letter_id, letter))
        logger.error(
            "record %s/%s dead-lettered as %s after %d tries (%s: %s); whole record in %s",
            record.collection,
            record.record_id,
            letter_id,
            attempts,
            failure.error,
            failure.detail,
            file_name or "MongoDB only",
        )

    def _replace_private(self, name: str, text: str) -> None:
        path = self.spool_dir / name
        temporary = path.with_name(f"{name}.partial-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        _write_private(temporary, text)
        os.replace(temporary, path)

    # -- spool and replay

    def _spool(self, records: list[Record]) -> Path | None:
        root = self.spool_dir
        lines = []
        for record in records:
            try:
                lines.append(record.to_json() + "\n")
            except Exception:  # its JSON fails: keep it as text in a dead-letter file instead
                lines.append(
                    Record(record.collection, record.record_id, _reprs(record.fields)).to_json()
                    + "\n"
                )
        # named by time, so a directory's files replay in the order they were written
        stem = f"records-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        try:
            with spool.own_directory(root) as directory:
                temporary = directory / f"{stem}.partial-{os.getpid()}"
                path = directory / f"{stem}.jsonl"
                _write_private(temporary, "".join(lines))
                os.replace(temporary, path)  # a reader never sees half a file
        except OSError as exc:
            logger.critical("%d records could not be spooled to %s: %s", len(records), root, exc)
            return None
        self._observer.spooled(len(records))
        logger.error("MongoDB unreachable at exit: %d records spooled to %s", len(records), path)
        return path

    async def replay(self, budget_s: float | None = None) -> int:
        """Write spool files back, record by record; returns how many records went in.

        The root's own files first, then this process's directory, then the directory of every
        process that is gone (`spool.adopt`: its lock, so no two processes replay it; removed
        once empty). Within a directory a file is claimed by renaming it to `.replaying-<pid>`,
        so two writers of one process never replay the same one; it is deleted once every
        record in it is written or dead-lettered, and put back when the database goes away
        midway (the replay stops there; the next one tries again). A line that is not a record
        of this writer's collections, or a file that is not ours, is quarantined (moved to the
        root as `quarantine-<name>`, kept whole) and described in `dead_letters`; the other
        records and files go on. Files a dead process left claimed or half-written are picked
        up again. With `budget_s`, no file is begun after that many seconds (the rest waits for
        the next replay). Never raises for a bad file: the sweep after it must run."""
        root = self.spool_dir
        loop = asyncio.get_running_loop()
        until = None if budget_s is None else loop.time() + budget_s
        replayed = 0
        directories = [root, *await asyncio.to_thread(spool.process_directories, root)]
        for directory in directories:
            if until is not None and loop.time() >= until:
                break
            adoption = None
            if directory != root and directory != spool.owned_directory(root):
                adoption = await asyncio.to_thread(spool.adopt, directory)
                if adoption is None:
                    continue  # its owner lives, or another process is replaying it
            try:
                written, stopped = await self._replay_directory(
                    directory, adoption is not None, until
                )
            finally:
                if adoption is not None:
                    await asyncio.to_thread(adoption.release)
            replayed += written
            if stopped:
                break
        await asyncio.to_thread(spool.release_own_if_empty, root)
        if replayed:
            logger.info("replayed %d spooled records from %s", replayed, root)
        return replayed

    async def _replay_directory(
        self, directory: Path, adopted: bool, until: float | None
    ) -> tuple[int, bool]:
        """The files of one directory, oldest first: how many records went in, and whether
        the database went away (the replay stops)."""
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(_recover_orphans, directory, adopted)
        replayed = 0
        for path in sorted(directory.glob("records-*.jsonl")):
            if until is not None and loop.time() >= until:
                break
            claimed = path.with_name(f"{path.stem}.replaying-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another writer of this process claimed it first
            except OSError as exc:
                logger.error("spool file %s cannot be claimed: %s", path, exc)
                continue
            _claimed.add(claimed)
            try:
                written = await self._replay_file(claimed, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    claimed.rename(path)
                raise
            finally:
                _claimed.discard(claimed)
            if written is None:
                logger.warning("replay of %s stopped: the database went away", directory)
                return replayed, True
            replayed += written
        return replayed, False

    async def _replay_file(self, claimed: Path, original: Path) -> int | None:
        """The records of one claimed file; None if the database went away (file put back)."""
        problem = spool.not_private(claimed, directory=False)
        data = b""
        if problem is None:
            try:
                data = await asyncio.to_thread(claimed.read_bytes)
            except OSError as exc:
                problem = f"unreadable: {exc}"
        bad: list[tuple[int, str, bytes]] = []
        records: list[tuple[int, Record]] = []
        if problem is None:
            for number, raw in enumerate(data.split(b"\n"), start=1):
                if raw.strip():
                    record, why = self._parse_line(raw)
                    if record is None:
                        bad.append((number, why, raw))
                    else:
                        records.append((number, record))
        written = 0
        for number, record in records:
            failure, tries = await self._attempt(record), 1
            while failure is not None and failure.kind is not FailureKind.UNENCODABLE:
                if failure.kind is FailureKind.TRANSIENT and not await self._database_answers():
                    claimed.rename(original)  # the database is away: the next start tries again
                    return None
                limit = (
                    self._rejected_tries
                    if failure.kind is FailureKind.REJECTED
                    else self._probe_after
                )
                if tries >= limit:
                    break
                await asyncio.sleep(self._retry_initial_s)
                failure, tries = await self._attempt(record), tries + 1
            if failure is not None:
                letter_id = (
                    "dl_" + hashlib.sha256(f"{original.name}:{number}".encode()).hexdigest()[:32]
                )
                await self._dead_letter(
                    record, failure, tries, letter_id=letter_id, source="replay"
                )
            else:
                written += 1
        if problem is None and not bad:
            claimed.unlink()
            return written
        quarantined = self.spool_dir / f"quarantine-{original.name}"  # the root: dirs empty out
        claimed.rename(quarantined)
        reason = (
            problem
            or f"{len(bad)} line(s) are not records of {sorted(self._collections)}: "
            + "; ".join(f"line {number}: {why}" for number, why, _ in bad[:5])
        )
        preview = bad[0][2].decode("utf-8", "replace") if bad else ""
        letter_id = "dl_" + hashlib.sha256(f"quarantine:{original.name}".encode()).hexdigest()[:32]
        self._enqueue(
            Record(
                self._dead_letters,
                letter_id,
                {
                    "at": dt.datetime.now(dt.UTC),
                    "collection": None,
                    "record_id": None,
                    "kind": "quarantined",
                    "error": "UnreadableSpool",
                    "reason": reason[:1000],
                    "attempts": 1,
                    "source": "replay",
                    "size_chars": len(data),
                    "preview": _clean_str(preview[:PREVIEW_CHARS], [0]),
                    "file": quarantined.name,
                    "spool_dir": str(quarantined.parent),
                    "host": socket.gethostname(),
                },
            )
        )
        logger.error(
            "spool file %s quarantined as %s: %s", original.name, quarantined.name, reason[:300]
        )
        return written

    def _parse_line(self, raw: bytes) -> tuple[Record | None, str]:
        try:
            data = json_util.loads(raw.decode("utf-8"))
        except Exception as exc:
            return None, f"not JSON ({type(exc).__name__})"
        if not isinstance(data, dict):
            return None, "not an object"
        collection, record_id, fields = (
            data.get("collection"),
            data.get("record_id"),
            data.get("fields"),
        )
        if collection not in self._collections:
            return None, f"collection {str(collection)[:64]!r} is not one this writer writes"
        if not isinstance(record_id, str) or not isinstance(fields, dict):
            return None, "record_id must be a string and fields an object"
        if any(not isinstance(key, str) or key.startswith("$") for key in fields):
            return None, "a field name is not a plain string"
        return Record(collection, record_id, fields), ""


_claimed: set[Path] = set()  # files this process is replaying right now (thread-run jobs share it)


def _recover_orphans(directory: Path, adopted: bool = False) -> None:
    """Rename back to `.jsonl` the files a dead process left claimed or half-written. In an
    adopted directory every such file is one: its owner is gone, and so is anyone who replayed
    it before (they held its lock); elsewhere the process id in the name says (same host)."""
    now = time.time()
    for path in directory.glob("records-*"):
        name = path.name
        stem, _, suffix = name.partition(".")
        if adopted and suffix.startswith(("replaying-", "partial")):
            if path in _claimed:
                continue
        elif suffix.startswith("replaying-") or suffix.startswith("partial-"):
            pid_text = suffix.rsplit("-", 1)[-1]
            if path in _claimed or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            try:
                age = now - os.lstat(path).st_ctime
            except OSError:
                continue
            owner_alive = _pid_alive(pid) and not (
                pid == os.getpid() and suffix.startswith("replaying-")
            )
            if owner_alive and age < ORPHAN_AFTER_S:
                continue
        elif suffix == "partial":  # written before the pid was in the name
            try:
                if now - os.lstat(path).st_ctime < PARTIAL_AFTER_S:
                    continue
            except OSError:
                continue
        else:
            continue
        target = path.with_name(f"{stem}.jsonl")
        try:
            if not target.exists():
                path.rename(target)
                logger.warning("spool file %s left by a process that is gone: replaying it", name)
        except OSError as exc:
            logger.error("spool file %s not recovered: %s", name, exc)


async def ensure_dead_letter_indexes(
    database: AsyncDatabase, collection: str = DEAD_LETTERS
) -> None:
    """The admin API lists dead letters newest first."""
    await database[collection].create_index([("at", -1), ("_id", -1)])
