"""Small helpers for the API's own queries: database errors, opaque cursors, time ranges.

Lists are ordered newest first by a timestamp, with `_id` breaking ties, and paged with a
cursor that encodes the last item's (timestamp, _id): unlike skip/limit, a page does not
shift when new records arrive while someone is paging.
"""

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pymongo.errors import ConnectionFailure

from agent_configs.errors import DatabaseUnavailable


class InvalidCursor(ValueError):
    pass


@contextmanager
def database_errors() -> Iterator[None]:
    """Connection problems become DatabaseUnavailable (503), as in the config store."""
    try:
        yield
    except ConnectionFailure as exc:
        raise DatabaseUnavailable(str(exc).split(",")[0]) from exc


def encode_cursor(at: datetime, record_id: str) -> str:
    raw = json.dumps([at.isoformat(), record_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, record_id = json.loads(raw)
        return datetime.fromisoformat(at), str(record_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not one this API returned") from exc


def newest_first_query(
    base: dict[str, Any], time_field: str, start: datetime | None, end: datetime | None, cursor: str | None
) -> dict[str, Any]:
    """`base` limited to [start, end) and to items after `cursor` in newest-first order."""
    clauses: list[dict[str, Any]] = [base] if base else []
    window: dict[str, Any] = {}
    if start is not None:
        window["$gte"] = start
    if end is not None:
        window["$lt"] = end
    if window:
        clauses.append({time_field: window})
    if cursor is not None:
        at, record_id = decode_cursor(cursor)
        clauses.append({"$or": [{time_field: {"$lt": at}}, {time_field: at, "_id": {"$lt": record_id}}]})
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
