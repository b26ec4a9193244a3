"""The events Switchboard sends out: CloudEvents 1.0 documents in the `outbox` collection.

An event is written to `outbox` before anyone tries to send it (the worker through its record
writer, with its session records; the admin API through its own no-loss writer, after the
change it describes has been committed); the dispatcher fans each one out to the matching
webhook subscriptions and delivers it as structured JSON (`application/cloudevents+json`).
The outbox document *is* the CloudEvent plus a few fields the dispatcher reads:

    {
      "_id": "sess_0a1b2c3d4e5f6a7b:ended",   # the CloudEvent `id` (and the webhook-id)
      "specversion": "1.0", "type": "session.ended", "source": "switchboard/worker",
      "subject": "sess_0a1b2c3d4e5f6a7b",     # the session id, or the agent id
      "time": "2025-06-01T12:00:00.000Z", "datacontenttype": "application/json",
      "data": {...},                          # one of the shapes below; never a secret
      "agent_id": "support-agent-v1", "session_id": "sess_0a1b2c3d4e5f6a7b",
      "ordering_key": "sess_0a1b2c3d4e5f6a7b", "seq": 1000000000,
      "created_at": datetime, "fanned_out": false,
      "traceparent": "00-<trace id>-<span id>-01",   # only while traces are exported
    }

Ids are deterministic where a retry or a replayed spool could write an event twice
(`<session_id>:started`, `:turn:<n>`, `:handoff:<n>`, `:escalated:<n>`, `:ended`, `:aborted`):
every write is an upsert on `_id`, so the event stays one event. Admin events are
`evt_<32 hex>`, one per committed change.

`seq` orders the events of one `ordering_key` (a session, `agent:<id>`, or `routing`): in a
session it counts the events as they happen (`session.started` is 0) and the end is
`LAST_SEQ`, whichever process writes it; admin events use the write's time in milliseconds.

`data` is plain JSON: datetimes become ISO-8601 strings here, so what the receiver gets is what
is stored. The builders below are the one definition of each type's `data`; each docstring
shows an example. Nothing in them reads a secret: configs name env vars, never values, and
these builders take none of those fields either.

`traceparent` (CloudEvents' distributed-tracing extension, W3C Trace Context) is the trace
context the event was made in: the worker's session span (or a span under it), an admin API
request's span. The dispatcher's delivery span joins that trace, and a receiver gets it in the
event. Absent when no trace is exported (agent_configs/telemetry.py).

This module imports nothing of the worker, the admin API or the dispatcher: all three use it.
"""

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import uuid4

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs import telemetry
from agent_configs.writer import Record

OUTBOX = "outbox"
DELIVERIES = "webhook_deliveries"
SUBSCRIPTIONS = "webhook_subscriptions"

SPECVERSION = "1.0"
WORKER_SOURCE = "switchboard/worker"
ADMIN_SOURCE = "switchboard/admin-api"
EVALS_SOURCE = "switchboard/evals"
ROUTING_ORDERING_KEY = "routing"
LAST_SEQ = 1_000_000_000
"""`seq` of a session's last event (`session.ended` / `session.aborted`): above any count of
events a session can reach, so the end is delivered after everything else of the session."""
MAX_REPORT_TURNS = 500
"""Turns listed in an end-of-call report: the newest ones (`turns_dropped` counts the rest),
so a session of days still makes a document far below MongoDB's 16 MB (a turn here is a few
KB: the user's message is cut to `max_user_message_chars`, tool results to 200 chars)."""


class EventType(StrEnum):
    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_PAUSED = "agent.paused"
    AGENT_RESUMED = "agent.resumed"
    AGENT_ARCHIVED = "agent.archived"
    AGENT_ROLLED_BACK = "agent.rolled_back"
    AGENT_ACTIVATED = "agent.activated"
    AGENT_GATE_OVERRIDDEN = "agent.gate_overridden"
    ROUTING_UPDATED = "routing.updated"
    SESSION_STARTED = "session.started"
    TURN_COMPLETED = "turn.completed"
    SESSION_HANDOFF = "session.handoff"
    SESSION_ESCALATED = "session.escalated"
    SESSION_ENDED = "session.ended"
    SESSION_ABORTED = "session.aborted"
    WEBHOOK_TEST = "webhook.test"
    EVAL_COMPLETED = "eval.completed"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_PROCESSED = "message.processed"
    MESSAGE_FAILED = "message.failed"


AGENT_EVENTS = frozenset(t for t in EventType if t.value.startswith("agent."))
SESSION_EVENTS = frozenset(
    {
        EventType.SESSION_STARTED,
        EventType.TURN_COMPLETED,
        EventType.SESSION_HANDOFF,
        EventType.SESSION_ESCALATED,
        EventType.SESSION_ENDED,
        EventType.SESSION_ABORTED,
    }
)


async def ensure_outbox_indexes(database: AsyncDatabase) -> None:
    """The dispatcher's queries: events not yet fanned out, oldest first; one ordering key's
    events in order. The worker and the admin API both create them (a no-op when they exist)."""
    await database[OUTBOX].create_index([("fanned_out", 1), ("created_at", 1)])
    await database[OUTBOX].create_index([("ordering_key", 1), ("seq", 1)])


def iso(at: datetime) -> str:
    """`2025-06-01T12:00:00.123Z`: UTC, milliseconds (what BSON keeps)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def new_event_id() -> str:
    return f"evt_{uuid4().hex}"


def new_event(
    type: EventType | str,
    source: str,
    subject: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    ordering_key: str,
    seq: int,
    at: datetime | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """The outbox document of one CloudEvent (see the module docstring); `_id` is `event_id`,
    or a new `evt_<32 hex>`. `traceparent`: the trace it belongs to (None: the current span's,
    if any; "": none). Raises ValueError for an unknown type or an empty subject."""
    kind = EventType(type)
    if not subject:
        raise ValueError("subject: must name the session or agent the event is about")
    at = at or datetime.now(UTC)
    if traceparent is None:
        traceparent = telemetry.traceparent()
    document = {
        "_id": event_id or new_event_id(),
        "specversion": SPECVERSION,
        "type": str(kind),
        "source": source,
        "subject": subject,
        "time": iso(at),
        "datacontenttype": "application/json",
        "data": json_ready(data),
        "agent_id": agent_id,
        "session_id": session_id,
        "ordering_key": ordering_key,
        "seq": seq,
        "created_at": at,
        "fanned_out": False,
    }
    if traceparent:
        document["traceparent"] = traceparent
    return document


def outbox_record(event: dict[str, Any]) -> Record:
    """The no-loss writer's record of one outbox document (`new_event`): an upsert on the event
    id, so a retried or replayed write leaves one event."""
    fields = {key: value for key, value in event.items() if key != "_id"}
    return Record(OUTBOX, event["_id"], fields)


def cloudevent(document: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvent a receiver gets, from its outbox document: the outbox's own fields
    (ordering, fan-out, the ids kept for queries) left out, `_id` as `id`; `traceparent`
    (the distributed-tracing extension) when the event has one."""
    event = {
        "specversion": document["specversion"],
        "id": document["_id"],
        "source": document["source"],
        "type": document["type"],
        "subject": document["subject"],
        "time": document["time"],
        "datacontenttype": document.get("datacontenttype", "application/json"),
        "data": document["data"],
    }
    if document.get("traceparent"):
        event["traceparent"] = document["traceparent"]
    return event


def json_ready(value: Any) -> Any:
    """`value` as plain JSON: datetimes as ISO strings, tuples as lists, non-finite floats as
    null, other unknown values as their text."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# -- session events (the worker) -----------------------------------------------------------


def session_event_id(session_id: str, suffix: str) -> str:
    """`<session_id>:started`, `:turn:3`, `:handoff:0`, `:escalated:0`, `:ended`, `:aborted`."""
    return f"{session_id}:{suffix}"


def session_event(
    type: EventType,
    session_id: str,
    agent_id: str | None,
    suffix: str,
    seq: int,
    data: dict[str, Any],
    at: datetime | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """A worker event of one session: subject and ordering key are the session id; its
    `traceparent` is the current span's (the session's trace) unless given."""
    return new_event(
        type,
        WORKER_SOURCE,
        session_id,
        data,
        event_id=session_event_id(session_id, suffix),
        agent_id=agent_id,
        session_id=session_id,
        ordering_key=session_id,
        seq=seq,
        at=at,
        traceparent=traceparent,
    )


def session_started_data(
    *,
    session_id: str,
    room: str,
    agent_id: str,
    agent_version: int,
    user_id: str | None,
    started_at: datetime,
    modalities: list[str],
    routing: dict[str, Any],
) -> dict[str, Any]:
    """`session.started`: which agent type (and version) took the room, and why.

    {"session_id": "sess_0a1b2c3d4e5f6a7b", "room": "support-7f3a", "agent_id": "support-agent-v1",
     "agent_version": 3, "user_id": "u-42", "started_at": "2025-06-01T12:00:00.000Z",
     "modalities": ["text"],
     "routing": {"agent_id": "support-agent-v1", "strategy": "purpose", "rules_version": 2,
                 "decided_at": "2025-06-01T11:59:59.870Z", "warnings": [], "metadata_source": "job",
                 "trail": [{"strategy": "explicit", "agent_id": null, "outcome": "no_proposal",
                            "reason": "no agent_id in metadata"},
                           {"strategy": "purpose", "agent_id": "support-agent-v1",
                            "outcome": "chosen", "reason": "purpose 'support'"}]}}
    """
    return {
        "session_id": session_id,
        "room": room,
        "agent_id": agent_id,
        "agent_version": agent_version,
        "user_id": user_id,
        "started_at": started_at,
        "modalities": list(modalities),
        "routing": routing,
    }


def turn_data(
    *,
    session_id: str,
    turn_index: int,
    agent_id: str,
    agent_version: int,
    user_id: str | None,
    user_text: str | None,
    user_text_truncated: bool,
    reply: str,
    status: str,
    fields: dict[str, Any],
    tool_calls: list[dict[str, Any]],
    latency_ms: dict[str, int],
    latency_from: str,
    error: str | None = None,
    error_kind: str | None = None,
) -> dict[str, Any]:
    """`turn.completed`, and each entry of an end-of-call report's `turns`: what the user said,
    the reply, the turn schema's fields, the tool calls that led to the reply, and the latency
    the user felt (ms from their message; see worker/latency.py). `status`: `ok`, `failed`
    (no model answered, or the fields could not be filled: `error` says why), or `replied`
    (in a report only: the fields were still being filled when the session ended).

        {"session_id": "sess_0a1b2c3d4e5f6a7b", "turn_index": 0, "agent_id": "support-agent-v1",
         "agent_version": 3, "user_id": "u-42", "user_text": "My order 1234 has not arrived",
         "user_text_truncated": false, "reply": "I'm sorry! Let me check order 1234.",
         "status": "ok", "fields": {"system_response": "I'm sorry! Let me check order 1234.",
                                    "intent": "order_status", "order_id": "1234"},
         "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "1234"}, "ok": true,
                         "duration_ms": 84, "result_preview": "{\\"status\\": \\"shipped\\"}"}],
         "latency_ms": {"first_text": 412, "fields": 655}, "latency_from": "typed"}
    """
    data: dict[str, Any] = {
        "session_id": session_id,
        "turn_index": turn_index,
        "agent_id": agent_id,
        "agent_version": agent_version,
        "user_id": user_id,
        "user_text": user_text,
        "user_text_truncated": user_text_truncated,
        "reply": reply,
        "status": status,
        "fields": fields,
        "tool_calls": tool_calls,
        "latency_ms": latency_ms,
        "latency_from": latency_from,
    }
    if error is not None:
        data["error"] = error
    if error_kind is not None:
        data["error_kind"] = error_kind
    return data


def handoff_data(*, session_id: str, handoff: dict[str, Any]) -> dict[str, Any]:
    """`session.handoff`: the conversation moved to another agent type, by an intent match
    (`strategy: intent`, with the `match`) or the model's transfer tool
    (`strategy: transfer_to_agent`, with `reason` and `context`: full, summary or none).

        {"session_id": "sess_0a1b2c3d4e5f6a7b", "from_agent_id": "support-agent-v1",
         "to_agent_id": "billing-agent-v1", "strategy": "transfer_to_agent",
         "reason": "refund request", "context": "summary", "at": "2025-06-01T12:01:10.000Z"}
    """
    return {"session_id": session_id, **handoff}


def escalated_data(*, session_id: str, escalation: dict[str, Any]) -> dict[str, Any]:
    """`session.escalated`: the agent asked for a human; `then` is what the session does
    meanwhile (`continue`, `hold`, or `end`).

        {"session_id": "sess_0a1b2c3d4e5f6a7b", "agent_id": "support-agent-v1",
         "reason": "the customer asks for a manager", "then": "hold",
         "at": "2025-06-01T12:02:00.000Z"}
    """
    return {"session_id": session_id, **escalation}


def latency_figures(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mark (`first_text`, `first_audio`, `fields`), over the turns that have it: how many,
    p50, p95 and max in ms (nearest-rank percentiles).

        {"first_text": {"count": 4, "p50_ms": 410, "p95_ms": 980, "max_ms": 980},
         "fields": {"count": 4, "p50_ms": 650, "p95_ms": 1400, "max_ms": 1400}}
    """
    figures: dict[str, Any] = {}
    for mark in ("first_text", "first_audio", "fields"):
        values = sorted(t["latency_ms"][mark] for t in turns if mark in (t.get("latency_ms") or {}))
        if values:
            figures[mark] = {
                "count": len(values),
                "p50_ms": _nearest_rank(values, 0.50),
                "p95_ms": _nearest_rank(values, 0.95),
                "max_ms": values[-1],
            }
    return figures


def _nearest_rank(values: list[int], quantile: float) -> int:
    return values[max(0, math.ceil(quantile * len(values)) - 1)]


def session_report_data(
    *,
    session_id: str,
    room: str,
    agent_id: str,
    agent_version: int,
    user_id: str | None,
    started_at: datetime | None,
    ended_at: datetime,
    end_reason: str,
    end_detail: str | None,
    summary: str | None,
    transcript: list[dict[str, str]],
    transcript_dropped: int,
    turns: list[dict[str, Any]],
    usage: dict[str, int],
    routing: dict[str, Any] | None,
    handoffs: list[dict[str, Any]],
    escalations: list[dict[str, Any]],
) -> dict[str, Any]:
    """`session.ended` (the end-of-call report) and `session.aborted` (the worker was lost:
    what the session record held at its last message; `summary` is null). `agent_id` and
    `agent_version` are the type the session ended with (see `handoffs` for the path),
    `turns` every turn as in `turn.completed` (the newest MAX_REPORT_TURNS; `turns_dropped`
    counts the rest), `transcript` the kept messages (`transcript_dropped`: the older ones let
    go under `max_transcript_chars`), `latency` the figures over the turns (latency_figures),
    `routing` the decision with its trail as in `session.started`.

        {"session_id": "sess_0a1b2c3d4e5f6a7b", "room": "support-7f3a",
         "agent_id": "support-agent-v1", "agent_version": 3, "user_id": "u-42",
         "started_at": "2025-06-01T12:00:00.000Z", "ended_at": "2025-06-01T12:03:30.000Z",
         "duration_s": 210.0, "end_reason": "user_ended", "end_detail": null,
         "summary": "The customer's order 1234 was late; it has shipped.",
         "transcript": [{"role": "assistant", "text": "Hi! How can I help?"},
                        {"role": "user", "text": "My order 1234 has not arrived"}, ...],
         "transcript_dropped": 0, "turn_count": 4, "turns": [<turn.completed data>, ...],
         "turns_dropped": 0, "usage": {"prompt_tokens": 1830, "completion_tokens": 214},
         "latency": {"first_text": {"count": 4, "p50_ms": 410, "p95_ms": 980, "max_ms": 980}},
         "routing": {<as in session.started>}, "handoffs": [], "escalations": []}
    """
    kept = turns[-MAX_REPORT_TURNS:]
    duration = (ended_at - started_at).total_seconds() if started_at is not None else None
    return {
        "session_id": session_id,
        "room": room,
        "agent_id": agent_id,
        "agent_version": agent_version,
        "user_id": user_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_s": round(duration, 3) if duration is not None else None,
        "end_reason": end_reason,
        "end_detail": end_detail,
        "summary": summary,
        "transcript": transcript,
        "transcript_dropped": transcript_dropped,
        "turn_count": len(turns),
        "turns": kept,
        "turns_dropped": len(turns) - len(kept),
        "usage": usage,
        "latency": latency_figures(turns),
        "routing": routing,
        "handoffs": handoffs,
        "escalations": escalations,
    }


# -- admin events (the admin API) ----------------------------------------------------------


def agent_data(
    *,
    agent_id: str,
    name: str,
    version: int,
    status: str,
    actor: str,
    restored_version: int | None = None,
) -> dict[str, Any]:
    """`agent.created` / `updated` / `paused` / `resumed` / `archived` / `rolled_back`: which
    agent type, the version the change produced, its status now, who did it (the API key's
    name, never the key). A rollback adds `restored_version`. The config itself is not sent:
    `GET /v1/agents/{agent_id}/versions/{version}` has it.

        {"agent_id": "support-agent-v1", "name": "Support", "version": 4, "status": "paused",
         "actor": "ops-console"}
    """
    data: dict[str, Any] = {
        "agent_id": agent_id,
        "name": name,
        "version": version,
        "status": status,
        "actor": actor,
    }
    if restored_version is not None:
        data["restored_version"] = restored_version
    return data


def activated_data(
    *,
    agent_id: str,
    name: str,
    version: int,
    status: str,
    actor: str,
    run_id: str | None,
    activated_version: int,
) -> dict[str, Any]:
    """`agent.activated`: a filed version (a release-gate candidate) went live; the agent
    event's fields plus `run_id`, the passing eval run that let it (null when the type is not
    gated, or an override did: `agent.gate_overridden` says so), and `activated_version`, the
    version asked for (`version` differs when it was filed again as a new one).

        {"agent_id": "support-agent-v1", "name": "Support", "version": 5, "status": "active",
         "actor": "ops-console", "run_id": "evr_0a1b...", "activated_version": 5}
    """
    return agent_data(agent_id=agent_id, name=name, version=version, status=status, actor=actor) | {
        "run_id": run_id,
        "activated_version": activated_version,
    }


def gate_overridden_data(
    *, agent_id: str, version: int, reason: str, actor: str, action: str
) -> dict[str, Any]:
    """`agent.gate_overridden`: an admin made a release-gated change without a passing eval
    run (header `Switchboard-Gate-Override`). `version` is the version the action made current
    (or, for `routing`, the type's current version); `action` is save, activate, resume,
    rollback or routing; `reason` is the header's text.

        {"agent_id": "support-agent-v1", "version": 6, "reason": "hotfix, suite flaky",
         "actor": "ops-console", "action": "save"}
    """
    return {
        "agent_id": agent_id,
        "version": version,
        "reason": reason,
        "actor": actor,
        "action": action,
    }


def routing_data(*, rules_version: int, strategies: list[str], actor: str) -> dict[str, Any]:
    """`routing.updated`: the rules version saved and the chain's enabled strategies in order
    (their params are not sent: `GET /v1/routing` has them).

        {"rules_version": 5, "strategies": ["explicit", "purpose", "default"], "actor": "ops-console"}
    """
    return {"rules_version": rules_version, "strategies": list(strategies), "actor": actor}


def message_data(
    *,
    channel: dict[str, str],
    message_id: str | None,
    user_id: str,
    chars: int,
    session_id: str | None = None,
    agent_id: str | None = None,
    reply_ms: int | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`message.received` / `message.processed` / `message.failed`: a channel's message
    (channels/hub.py), never its text. Example (processed):

        {"channel": {"kind": "amqp", "binding_id": "orders", "conversation_id": "c-1"},
         "message_id": "m-7", "user_id": "amqp:orders:u-1", "chars": 42,
         "session_id": "sess_0a1b2c3d4e5f6a7b", "agent_id": "support-agent-v1",
         "reply_ms": 812}

    `failed` has `error: {"code": "rate_limited", "message": "..."}` instead of `reply_ms`."""
    data: dict[str, Any] = {
        "channel": dict(channel),
        "message_id": message_id,
        "user_id": user_id,
        "chars": chars,
        "session_id": session_id,
        "agent_id": agent_id,
    }
    if reply_ms is not None:
        data["reply_ms"] = reply_ms
    if error is not None:
        data["error"] = dict(error)
    return data


def admin_event(
    type: EventType,
    subject: str,
    data: dict[str, Any],
    *,
    agent_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An admin API event: ordered per agent (`agent:<id>`) or in the routing stream, by the
    write's time in ms."""
    at = at or datetime.now(UTC)
    ordering_key = f"agent:{agent_id}" if agent_id is not None else ROUTING_ORDERING_KEY
    return new_event(
        type,
        ADMIN_SOURCE,
        subject,
        data,
        agent_id=agent_id,
        ordering_key=ordering_key,
        seq=int(at.timestamp() * 1000),
        at=at,
    )
