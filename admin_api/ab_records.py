"""Two groups of ended sessions side by side (GET /api/v1/analytics/compare): an A/B split's
variants, or two versions of one agent type, read from the `sessions` and `turns` records the
worker writes (worker/sinks/records.py) and summed up here, in Python.

Why not in the database: FerretDB v1's `$group` computes only its first accumulator (and has
no `$avg`; admin_api/stats.py), and a comparison needs a dozen numbers per group plus the spread
of each mean. So each group is a bounded sample: its newest `SESSION_SAMPLE_CAP` ended sessions
(one query per group, only the fields counted: no transcript, no summary), then the turns of
both samples (one query, only `session_id`, `status`, `agent_id`, `latency_ms` and the counted
fields; see `_turns`). `truncated` says a cap was hit: the numbers are then the newest
sessions'.

What it costs: on MongoDB the sessions query walks the (status, started_at) index over the
window's ended sessions, checking the type on each, and the turns query walks the
(agent_id, user_id, created_at) index keys of the groups' types, fetching only the turns in
the samples' time span: milliseconds for a few thousand sessions. On FerretDB v1 (SQLite)
every query scans its whole collection whatever its filter, at about 0.3 ms a document on
this machine's 2 shared cores (measured once with a scratch script over records shaped as the
worker writes them, 8-message transcripts and 5-stage waterfalls: 5,000 sessions and 20,000
turns in the database, two groups of 2,500: the two sessions queries
2.9-4.0 s, the turns query 6.0-8.0 s, where reading every turn's `_id` alone took 6.0 s). So
a comparison costs three scans there, and past ~30,000 turns the turns scan alone outlasts the
driver's 10 s socket timeout (a 503): FerretDB is the development database.

Which sessions: a session belongs to the agent type routing chose for it (`routing.agent_id`)
and its `agent_version` at the start, so a session handed off to another type still counts for
the variant the caller was routed to (its hand-off is one of that variant's outcomes). Ended
and aborted (worker lost) sessions count, the active and refused do not; sessions pinned to a
type (the console's playground, `python -m evals run --version`) are tests, not callers, and
are left out, as are an eval run's rooms routed like callers' (`eval_run_id` on the record). The window bounds the start time, as the sessions list's does.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
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
from agent_configs.models import SYSTEM_RESPONSE, AgentConfig, FieldType, TurnField
from agent_configs.routing.pin import PINNED

SESSION_SAMPLE_CAP = 5000
"""Sessions read per group, newest first."""
TURN_READ_CAP = 200_000
"""Turns read for a comparison: 20 per session of two full samples."""
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
    "started_at": 1,
    "ended_at": 1,
    "cost.llm": 1,
    # one small member of each entry: how many there were, and where hand-offs went
    "escalations.at": 1,
    "handoffs.to_agent_id": 1,
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


@dataclass
class _Sample:
    spec: GroupSpec
    config: AgentConfig
    sessions: list[dict[str, Any]]
    truncated: bool


async def read_groups(
    database: AsyncDatabase,
    groups: Sequence[tuple[GroupSpec, AgentConfig]],
    since: datetime | None,
    until: datetime | None,
) -> list[Group]:
    """Each group's numbers, in order; a group's `config` is the version whose turn schema
    names the fields counted."""
    with database_errors():
        samples = [await _sessions(database, spec, config, since, until) for spec, config in groups]
        turns, turns_cut = await _turns(database, samples)
    groups_read = [_group(sample, turns, turns_cut) for sample in samples]
    _align(groups_read)
    return groups_read


def _align(groups: list[Group]) -> None:
    """An end reason or a field value one group saw and another did not is listed in both, at
    0 of the other's n (0 of 40 is not "no data": its interval is [0, 0.088]), so the two can
    be read side by side."""
    for group in groups:
        others = [other for other in groups if other is not group]
        known = {reason.reason for reason in group.end_reasons}
        for other in others:
            for reason in other.end_reasons:
                if reason.reason not in known:
                    known.add(reason.reason)
                    group.end_reasons.append(
                        EndReason(reason=reason.reason, rate=rate(0, group.sessions))
                    )
        for name, field in group.fields.items():
            if not isinstance(field, FieldValues):
                continue
            n = field.values[0].rate.n if field.values else 0
            seen = {value.value for value in field.values}
            for other in others:
                theirs = other.fields.get(name)
                if not isinstance(theirs, FieldValues):
                    continue
                for value in theirs.values:
                    if value.value not in seen:
                        seen.add(value.value)
                        field.values.append(ValueRate(value=value.value, rate=rate(0, n)))


async def _sessions(
    database: AsyncDatabase,
    spec: GroupSpec,
    config: AgentConfig,
    since: datetime | None,
    until: datetime | None,
) -> _Sample:
    base: dict[str, Any] = {
        "routing.agent_id": spec.agent_id,
        "status": {"$in": list(ENDED_STATUSES)},
        "routing.strategy": {"$ne": PINNED},
        "eval_run_id": None,  # an eval run's rooms are not live traffic (missing or null)
    }
    if spec.version is not None:
        base["agent_version"] = spec.version
    query = newest_first_query(base, "started_at", since, until, None)
    found = (
        database[SESSIONS]
        .find(query, _SESSION_FIELDS)
        .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
        .limit(SESSION_SAMPLE_CAP + 1)
    )
    sessions = await found.to_list(length=SESSION_SAMPLE_CAP + 1)
    return _Sample(spec, config, sessions[:SESSION_SAMPLE_CAP], len(sessions) > SESSION_SAMPLE_CAP)


async def _turns(
    database: AsyncDatabase, samples: list[_Sample]
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The turns of every sampled session, by session id, in one query; True when the cap cut
    them.

    Not `session_id: {$in: ids}`, which MongoDB answers with one index seek per session but
    FerretDB v1 compares with each id for each turn it scans (measured: 4,000 of 8,000 turns
    by 1,000 ids 2.0 s against 1.5 s for any query there; 5,000 ids over 40,000 turns passed
    the driver's 10 s timeout). Instead: the agent types the sampled sessions' turns were
    served by (the routed type, and those the sessions handed off to) within the samples'
    time span, which MongoDB reads through the (agent_id, user_id, created_at) index and
    FerretDB filters at a constant cost per turn; the sessions are matched here, so turns of
    unsampled sessions in that span (another version, a pinned test) are read and dropped."""
    sessions = [session for sample in samples for session in sample.sessions]
    if not sessions:
        return {}, False
    types = {sample.spec.agent_id for sample in samples}
    for session in sessions:
        for handoff in _entries(session, "handoffs"):
            if isinstance(handoff.get("to_agent_id"), str):
                types.add(handoff["to_agent_id"])
    starts = [s["started_at"] for s in sessions if isinstance(s.get("started_at"), datetime)]
    ends = [s["ended_at"] for s in sessions if isinstance(s.get("ended_at"), datetime)]
    query: dict[str, Any] = {"agent_id": {"$in": sorted(types)}}
    span: dict[str, Any] = {}
    if starts:
        span["$gte"] = min(starts)
    if ends and len(ends) == len(sessions):
        span["$lte"] = max(ends)
    if span:
        query["created_at"] = span
    counted = {f"fields.{f.name}": 1 for sample in samples for f in _counted(sample.config)}
    projection = {"_id": 0, "session_id": 1, "agent_id": 1, "status": 1, "latency_ms": 1}
    found = database[TURNS].find(query, projection | counted).limit(TURN_READ_CAP + 1)
    wanted = {session["_id"] for session in sessions}
    by_session: dict[str, list[dict[str, Any]]] = {}
    read = 0
    async for turn in found:
        read += 1
        if read > TURN_READ_CAP:
            return by_session, True
        if turn.get("session_id") in wanted:
            by_session.setdefault(turn["session_id"], []).append(turn)
    return by_session, False


def _counted(config: AgentConfig) -> list[TurnField]:
    """The schema's fields a comparison counts: enum, bool and string values, int and number
    means; not the reply (`system_response`) and not lists."""
    return [
        f
        for f in config.turn_schema.fields
        if f.name != SYSTEM_RESPONSE and (f.type in CATEGORICAL_TYPES or f.type in NUMERIC_TYPES)
    ]


def _group(
    sample: _Sample, turns_by_session: dict[str, list[dict[str, Any]]], turns_cut: bool
) -> Group:
    spec, sessions = sample.spec, sample.sessions
    turns = [turn for s in sessions for turn in turns_by_session.get(s["_id"], [])]
    answered = [t for t in turns if t.get("agent_id") == spec.agent_id and t.get("status") == "ok"]
    fields: dict[str, FieldValues | FieldMean] = {}
    for schema_field in _counted(sample.config):
        given = [(t.get("fields") or {}).get(schema_field.name) for t in answered]
        fields[schema_field.name] = (
            FieldMean(mean=mean(v for v in given if _is_number(v)))
            if schema_field.type in NUMERIC_TYPES
            else _value_rates(given)
        )
    n = len(sessions)
    reasons = Counter(_text_or_none(s.get("end_reason")) for s in sessions)
    return Group(
        agent_id=spec.agent_id,
        version=spec.version,
        sessions=n,
        truncated=sample.truncated or turns_cut,
        turns_per_session=mean(
            s["turn_count"] for s in sessions if _is_number(s.get("turn_count"))
        ),
        escalation_rate=rate(sum(1 for s in sessions if _entries(s, "escalations")), n),
        handoff_rate=rate(sum(1 for s in sessions if _entries(s, "handoffs")), n),
        end_reasons=[
            EndReason(reason=reason, rate=rate(count, n)) for reason, count in _by_count(reasons)
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


def _entries(session: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The session's `handoffs` or `escalations` (as projected: a small member of each)."""
    entries = session.get(name)
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> int:
    return int(value) if _is_number(value) else 0
