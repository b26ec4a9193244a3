"""Per-agent analytics over the session and turn records, within what FerretDB v1 computes.

Measured against FerretDB v1.24 (see tests/admin_api/test_stats.py, which runs these very
pipelines on it):
- `$match`, `$group` with `$sum` and `$count`, `$sort` work;
- `$avg`, `$min`, `$max`, `$facet`, and `$subtract`/`$toLong` in `$project` are not
  implemented;
- a `$group` computes only its FIRST accumulator correctly: every further one comes back 0.

So every pipeline here is `$match` + a `$group` with exactly one `$sum`, a mean is a sum
pipeline and a count pipeline, and the session duration (a date difference, which FerretDB
cannot compute) is summed in Python over a projection of the two timestamps.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.session_records import SESSIONS, TURNS
from agent_configs.database import database_errors
from agent_configs.models import AgentConfig, FieldType

DISTRIBUTED_TYPES = (FieldType.ENUM, FieldType.BOOL)
NUMERIC_TYPES = (FieldType.INT, FieldType.NUMBER)


class DistributionStats(BaseModel):
    """An enum field: how often each value was filled ("null" for none)."""

    type: Literal["enum"] = "enum"
    counts: dict[str, int]
    count: int = Field(description="Turns that gave the field a value.")


class BoolStats(BaseModel):
    type: Literal["bool"] = "bool"
    counts: dict[str, int] = Field(description='"true", "false" and "null" counts.')
    count: int = Field(description="Turns that gave the field a value.")
    true_rate: float | None = Field(
        description="Share of the given values that are true, e.g. escalation rate."
    )


class NumericStats(BaseModel):
    type: Literal["int", "number"]
    mean: float | None
    count: int = Field(description="Turns that gave the field a number.")


FieldStats = DistributionStats | BoolStats | NumericStats


class SessionStats(BaseModel):
    total: int
    by_status: dict[str, int]
    ended: int
    average_duration_s: float | None


class TurnStats(BaseModel):
    total: int
    by_status: dict[str, int]


class AgentStats(BaseModel):
    agent_id: str
    start: datetime | None = Field(default=None, serialization_alias="from")
    end: datetime | None = Field(default=None, serialization_alias="to")
    sessions: SessionStats
    turns: TurnStats
    fields: dict[str, FieldStats]


async def agent_stats(
    database: AsyncDatabase, config: AgentConfig, start: datetime | None, end: datetime | None
) -> AgentStats:
    sessions, turns = database[SESSIONS], database[TURNS]
    session_match = {"agent_id": config.agent_id} | _window("started_at", start, end)
    turn_match = {"agent_id": config.agent_id} | _window("created_at", start, end)
    ok_turns = turn_match | {"status": "ok"}
    with database_errors():
        by_status = await _counts_by(sessions, session_match, "status")
        ended, average = await _average_duration(sessions, session_match)
        turns_by_status = await _counts_by(turns, turn_match, "status")
        fields = {
            field.name: await _field_stats(turns, ok_turns, field.name, field.type)
            for field in config.turn_schema.fields
            if field.type in DISTRIBUTED_TYPES or field.type in NUMERIC_TYPES
        }
    return AgentStats(
        agent_id=config.agent_id,
        start=start,
        end=end,
        sessions=SessionStats(
            total=sum(by_status.values()),
            by_status=by_status,
            ended=ended,
            average_duration_s=average,
        ),
        turns=TurnStats(total=sum(turns_by_status.values()), by_status=turns_by_status),
        fields=fields,
    )


def _window(field: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    return {field: bounds} if bounds else {}


async def _aggregate(
    collection: AsyncCollection, pipeline: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    cursor = await collection.aggregate(pipeline)
    return await cursor.to_list(length=None)


async def _counts_by(
    collection: AsyncCollection, match: dict[str, Any], path: str
) -> dict[str, int]:
    """How many documents have each value at `path` (a missing value counts as "null")."""
    rows = await _aggregate(
        collection, [{"$match": match}, {"$group": {"_id": f"${path}", "n": {"$sum": 1}}}]
    )
    return {_label(row["_id"]): int(row["n"]) for row in rows}


async def _sum_of(collection: AsyncCollection, match: dict[str, Any], path: str) -> float:
    rows = await _aggregate(
        collection, [{"$match": match}, {"$group": {"_id": None, "total": {"$sum": f"${path}"}}}]
    )
    return float(rows[0]["total"]) if rows else 0.0


async def _count(collection: AsyncCollection, match: dict[str, Any]) -> int:
    rows = await _aggregate(collection, [{"$match": match}, {"$count": "n"}])
    return int(rows[0]["n"]) if rows else 0


async def _field_stats(
    turns: AsyncCollection, match: dict[str, Any], name: str, kind: FieldType
) -> FieldStats:
    path = f"fields.{name}"
    if kind in NUMERIC_TYPES:
        numeric = match | {path: {"$type": "number"}}
        count = await _count(turns, numeric)
        mean = await _sum_of(turns, numeric, path) / count if count else None
        return NumericStats(
            type="int" if kind == FieldType.INT else "number", mean=mean, count=count
        )
    counts = await _counts_by(turns, match, path)
    given = sum(n for value, n in counts.items() if value != "null")
    if kind == FieldType.ENUM:
        return DistributionStats(counts=counts, count=given)
    true_count = counts.get("true", 0)
    decided = true_count + counts.get("false", 0)
    return BoolStats(
        counts=counts, count=given, true_rate=true_count / decided if decided else None
    )


async def _average_duration(
    sessions: AsyncCollection, match: dict[str, Any]
) -> tuple[int, float | None]:
    """Ended sessions and their mean length, from the two timestamps (no date math in FerretDB)."""
    query = match | {"ended_at": {"$exists": True}}
    found = sessions.find(query, {"started_at": 1, "ended_at": 1, "_id": 0})
    total_s, ended = 0.0, 0
    async for document in found:
        started, finished = document.get("started_at"), document.get("ended_at")
        if isinstance(started, datetime) and isinstance(finished, datetime):
            total_s += max((finished - started).total_seconds(), 0.0)
            ended += 1
    return ended, (total_s / ended if ended else None)


def _label(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
