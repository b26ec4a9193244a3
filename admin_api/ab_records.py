"""Two groups of ended sessions side by side (GET /api/v1/analytics/compare): an A/B split's
variants, or two versions of one agent type, read from the `sessions` and `turns` records the
worker writes (worker/sinks/records.py) and summed up here, in Python.

Why not in the database: FerretDB v1's `$group` computes only its first accumulator (and has
no `$avg`; admin_api/stats.py), and a comparison needs a dozen numbers per group plus the spread
of each mean. So each group is a bounded sample: its newest `SESSION_SAMPLE_CAP` ended sessions
(one query, only the fields counted: no transcript, no summary), then their turns (one `$in`
query on `session_id`, only `status`, `agent_id`, `latency_ms` and the schema's counted
fields). `truncated` says the cap was hit: the numbers are then those of the newest sessions.

What it costs: on MongoDB the sessions query walks the (status, started_at) index over the
window's ended sessions, checking the type on each, and the turns query is one index seek per
session on (session_id, turn_index): milliseconds for a few thousand sessions. On FerretDB v1
(SQLite) both queries scan their collection whatever the indexes (docs/DESIGN: a per-user
query over 5k turns took ~270 ms), so a comparison costs two scans of `sessions` and two of
`turns` (one of each per group) plus decoding the projected fields of what matched; measured
in tests/admin_api/test_analytics.py's docstring.

Which sessions: a session belongs to the agent type routing chose for it (`routing.agent_id`)
and its `agent_version` at the start, so a session handed off to another type still counts for
the variant the caller was routed to (its hand-off is one of that variant's outcomes). Ended
and aborted (worker lost) sessions count, the active and refused do not; sessions pinned to a
type (the console's playground, `python -m evals run --version`) are tests, not callers, and
are left out. The window bounds the start time, as the sessions list's does.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from pydantic import BaseModel, Field
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.ab_statistics import Mean, Rate, mean, rate
from admin_api.session_records import SESSIONS, TURNS
from admin_api.storage import newest_first_query
from agent_configs.database import database_errors
from agent_configs.models import SYSTEM_RESPONSE, AgentConfig, FieldType
from agent_configs.routing.pin import PINNED

SESSION_SAMPLE_CAP = 5000
"""Sessions read per group, newest first."""
TURN_SAMPLE_CAP = 100_000
"""Turns read per group: 20 per session of a full sample."""
VALUES_SHOWN = 20
"""A string field's most frequent values listed; the others are counted in `more_values`."""
ENDED_STATUSES = ("ended", "aborted")
FIRST_TEXT = "first_text"

CATEGORICAL_TYPES = (FieldType.ENUM, FieldType.BOOL, FieldType.STRING)
NUMERIC_TYPES = (FieldType.INT, FieldType.NUMBER)

_SPEC = re.compile(r"(?P<agent_id>[a-z0-9]+(?:[-_][a-z0-9]+)*)(?:@(?P<version>[0-9]+))?")
_SESSION_FIELDS = {
    "_id": 1,
    "end_reason": 1,
    "turn_count": 1,
    "cost.llm": 1,
    # one small member of each entry: how many there were is all that is counted
    "escalations.at": 1,
    "handoffs.at": 1,
}


class InvalidSpec(ValueError):
    pass


@dataclass(frozen=True)
class GroupSpec:
    """`agent_id` (every version) or `agent_id@version`."""

    agent_id: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> "GroupSpec":
        match = _SPEC.fullmatch(text.strip())
        if match is None or not 2 <= len(match["agent_id"]) <= 64:
            raise InvalidSpec("expected an agent type id or id@version, e.g. support-agent-v1@3")
        version = match["version"]
        if version is not None and not 1 <= int(version) <= 1_000_000_000:
            raise InvalidSpec("the version after @ must be a number >= 1")
        return cls(match["agent_id"], int(version) if version is not None else None)


class ValueRate(BaseModel):
    value: str | bool | None = Field(description="The field's value; null: no value given.")
    rate: Rate = Field(description="Turns that gave this value, of the type's answered turns.")


class FieldValues(BaseModel):
    """An enum, bool or string field: how often each value was given."""

    values: list[ValueRate]
    more_values: int = Field(
        default=0, description=f"Distinct values past the {VALUES_SHOWN} most frequent."
    )


class FieldMean(BaseModel):
    """An int or number field: its mean over the turns that gave a number."""

    mean: Mean


class EndReason(BaseModel):
    reason: str | None
    rate: Rate


class Tokens(BaseModel):
    input: Mean
    output: Mean


class Group(BaseModel):
    agent_id: str
    version: int | None
    sessions: int = Field(description="Ended sessions read (the newest, at most the cap).")
    truncated: bool = Field(description="More sessions (or turns) matched than were read.")
    turns_per_session: Mean
    escalation_rate: Rate
    handoff_rate: Rate
    end_reasons: list[EndReason]
    fields: dict[str, FieldValues | FieldMean]
    latency_ms: dict[str, Mean]
    tokens_per_session: Tokens


async def read_group(
    database: AsyncDatabase,
    spec: GroupSpec,
    config: AgentConfig,
    since: datetime | None,
    until: datetime | None,
) -> Group:
    """One group's numbers; `config` is the version whose turn schema names the fields."""
    base: dict[str, Any] = {
        "routing.agent_id": spec.agent_id,
        "status": {"$in": list(ENDED_STATUSES)},
        "routing.strategy": {"$ne": PINNED},
    }
    if spec.version is not None:
        base["agent_version"] = spec.version
    query = newest_first_query(base, "started_at", since, until, None)
    counted = [f for f in config.turn_schema.fields if f.name != SYSTEM_RESPONSE]
    counted = [f for f in counted if f.type in CATEGORICAL_TYPES or f.type in NUMERIC_TYPES]
    turn_fields = {"_id": 0, "session_id": 1, "agent_id": 1, "status": 1, "latency_ms": 1}
    turn_fields |= {f"fields.{f.name}": 1 for f in counted}
    with database_errors():
        found = (
            database[SESSIONS]
            .find(query, _SESSION_FIELDS)
            .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
            .limit(SESSION_SAMPLE_CAP + 1)
        )
        sessions = await found.to_list(length=SESSION_SAMPLE_CAP + 1)
        truncated = len(sessions) > SESSION_SAMPLE_CAP
        sessions = sessions[:SESSION_SAMPLE_CAP]
        turns: list[dict[str, Any]] = []
        if sessions:
            ids = [s["_id"] for s in sessions]
            read = database[TURNS].find({"session_id": {"$in": ids}}, turn_fields)
            turns = await read.limit(TURN_SAMPLE_CAP + 1).to_list(length=TURN_SAMPLE_CAP + 1)
    if len(turns) > TURN_SAMPLE_CAP:
        truncated, turns = True, turns[:TURN_SAMPLE_CAP]
    answered = [t for t in turns if t.get("agent_id") == spec.agent_id and t.get("status") == "ok"]
    fields: dict[str, FieldValues | FieldMean] = {}
    for schema_field in counted:
        given = [(t.get("fields") or {}).get(schema_field.name) for t in answered]
        fields[schema_field.name] = (
            FieldMean(mean=mean(v for v in given if _is_number(v)))
            if schema_field.type in NUMERIC_TYPES
            else _value_rates(given)
        )
    n = len(sessions)
    return Group(
        agent_id=spec.agent_id,
        version=spec.version,
        sessions=n,
        truncated=truncated,
        turns_per_session=mean(
            s["turn_count"] for s in sessions if _is_number(s.get("turn_count"))
        ),
        escalation_rate=rate(sum(1 for s in sessions if _has_entries(s, "escalations")), n),
        handoff_rate=rate(sum(1 for s in sessions if _has_entries(s, "handoffs")), n),
        end_reasons=[
            EndReason(reason=reason, rate=rate(count, n))
            for reason, count in _by_count(
                Counter(_text_or_none(s.get("end_reason")) for s in sessions)
            )
        ],
        fields=fields,
        latency_ms=_latencies(turns),
        tokens_per_session=_tokens(sessions),
    )


def _value_rates(given: list[Any]) -> FieldValues:
    counts = Counter(_categorical(value) for value in given)
    ordered = _by_count(counts)
    n = len(given)
    return FieldValues(
        values=[ValueRate(value=v, rate=rate(c, n)) for v, c in ordered[:VALUES_SHOWN]],
        more_values=max(0, len(ordered) - VALUES_SHOWN),
    )


def _latencies(turns: Iterable[dict[str, Any]]) -> dict[str, Mean]:
    """Each `latency_ms` mark present (first_text, first_audio, fields), over the turns that
    have it; first_text always, first."""
    marks: dict[str, list[float]] = {FIRST_TEXT: []}
    for turn in turns:
        latency = turn.get("latency_ms")
        if isinstance(latency, dict):
            for name, value in latency.items():
                if _is_number(value):
                    marks.setdefault(str(name), []).append(value)
    return {name: mean(values) for name, values in marks.items()}


def _tokens(sessions: Iterable[dict[str, Any]]) -> Tokens:
    """Tokens in and out per session, every model summed, over the sessions that recorded a
    cost (an aborted session, or one from before costs were recorded, has none)."""
    inputs: list[int] = []
    outputs: list[int] = []
    for session in sessions:
        models = (session.get("cost") or {}).get("llm")
        if not isinstance(models, list):
            continue
        entries = [m for m in models if isinstance(m, dict)]
        inputs.append(sum(_count(m.get("input_tokens")) for m in entries))
        outputs.append(sum(_count(m.get("output_tokens")) for m in entries))
    return Tokens(input=mean(inputs), output=mean(outputs))


def _by_count(counts: Counter[Any]) -> list[tuple[Any, int]]:
    """Most frequent first; ties in the value's text order (null last), so a page is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, str(item[0])))


def _categorical(value: Any) -> str | bool | None:
    if value is None or isinstance(value, bool | str):
        return value
    return str(value)  # a value of another type than the schema says: shown as text


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _has_entries(session: dict[str, Any], name: str) -> bool:
    entries = session.get(name)
    return isinstance(entries, list) and len(entries) > 0


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> int:
    return int(value) if _is_number(value) else 0
