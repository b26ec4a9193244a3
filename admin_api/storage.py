"""Small helpers for the API's own queries: opaque cursors, time ranges, ISO timestamps.

Lists are ordered newest first by a timestamp, with `_id` breaking ties, and paged with a
cursor that encodes the last item's (timestamp, _id): unlike skip/limit, a page does not
shift when new records arrive while someone is paging.
"""

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection


class InvalidCursor(ValueError):
    pass


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


async def newest_first_page(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    time_field: str,
    limit: int,
    projection: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `query` newest first by `time_field`, `_id` breaking ties: at most `limit`
    documents and the cursor of the page after them (None on the last page). One more than
    `limit` is read to know whether there is a next page."""
    found = (
        collection.find(query, projection)
        .sort([(time_field, DESCENDING), ("_id", DESCENDING)])
        .limit(limit + 1)
    )
    documents = await found.to_list(length=limit + 1)
    if len(documents) <= limit:
        return documents, None
    last = documents[limit - 1]
    return documents[:limit], encode_cursor(last[time_field], str(last["_id"]))


def newest_first_query(
    base: dict[str, Any],
    time_field: str,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
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
        clauses.append(
            {"$or": [{time_field: {"$lt": at}}, {time_field: at, "_id": {"$lt": record_id}}]}
        )
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


_NUMBER = re.compile(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?")


def _iso_text_only(value: object) -> object:
    """Pydantic would read a bare number as seconds since 1970; the API documents ISO 8601."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("use an ISO 8601 date-time, e.g. 2025-01-31T09:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_text_only)]
