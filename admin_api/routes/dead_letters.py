"""Dead letters: records MongoDB would not take (agent_configs/writer.py), newest first.

Read-only. Each says which record it was (collection, record_id), why it was refused, a
bounded preview, and which file on which host holds the whole record (`file` in `spool_dir`
on `host`); a quarantined spool file has `kind: quarantined` and no record_id.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from pymongo import DESCENDING

from admin_api.deps import ReaderKey, ServicesDep
from admin_api.problems import problem_responses
from admin_api.routes import API_V1
from admin_api.routes.sessions import cursor_problem, time_range
from admin_api.storage import InvalidCursor, IsoDatetime, encode_cursor, newest_first_query
from agent_configs.database import database_errors
from agent_configs.writer import DEAD_LETTERS

router = APIRouter(prefix=API_V1, tags=["dead-letters"])


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    at: datetime
    collection: str | None = None
    record_id: str | None = None
    kind: str
    error: str
    reason: str
    attempts: int = 1
    source: str = "writer"
    size_chars: int = 0
    preview: str = ""
    file: str | None = None
    spool_dir: str | None = None
    host: str | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "DeadLetter":
        return cls.model_validate({**document, "id": str(document["_id"])})


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None = None


@router.get("/dead-letters", responses=problem_responses(401, 403, 422, 503))
async def list_dead_letters(
    caller: ReaderKey,
    services: ServicesDep,
    collection: Annotated[
        str | None, Query(description="e.g. turns, sessions, events", max_length=64)
    ] = None,
    record_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    start: Annotated[IsoDatetime | None, Query(alias="from")] = None,
    end: Annotated[IsoDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DeadLetterPage:
    """What the writers could not store, and where the whole record is kept."""
    start, end = time_range(start, end)
    base = {
        name: value
        for name, value in (("collection", collection), ("record_id", record_id))
        if value
    }
    try:
        query = newest_first_query(base, "at", start, end, cursor)
    except InvalidCursor as exc:
        raise cursor_problem(exc) from None
    with database_errors():
        found = services.database[DEAD_LETTERS].find(query, {"record_json": 0})
        documents = (
            await found.sort([("at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
            .to_list(limit + 1)
        )
    items = [DeadLetter.from_document(d) for d in documents[:limit]]
    more = len(documents) > limit
    return DeadLetterPage(
        items=items, next_cursor=encode_cursor(items[-1].at, items[-1].id) if more else None
    )
