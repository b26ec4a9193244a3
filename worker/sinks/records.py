"""The session's records in MongoDB (worker/records.py's no-loss writer): the session record
from its start to its end, its transcript as it grows, one record per turn, the audit trail.

Fewer writes per turn. FerretDB on SQLite spends 16-27 ms of CPU per write on the same cores
(bench/README.md, capacity), and a turn used to cost five: the transcript at the user's message,
the turn at its reply (`replied`), the transcript at the reply, the turn again with its fields,
and `turn.completed`. Now a turn is written once, with its fields, when they come within
`REPLY_GRACE_S` of the reply; the user's message goes into the transcript with the reply that
answers it when that comes within the same grace. A typical turn costs three writes (the
transcript with both messages, the turn, its event).

Nothing said is lost when the worker dies (kill -9) beyond that grace: a turn whose fields are
slower (the extraction call, a busy CPU) is stored `replied` when the grace ends and completed
later (same `_id`, an idempotent `$set`), and a message that waits longer for its reply is in
the transcript once the grace ends (tests/worker/test_faults.py). A record submitted is never
lost (the writer's spool and replay); the grace only moves when it is submitted.
"""

import asyncio
from typing import Any

from agent_configs.models import SYSTEM_RESPONSE
from worker.records import SESSIONS, TURNS, Record
from worker.sinks import (
    SessionEnd,
    SessionOutputs,
    SessionStart,
    Sink,
    Transcript,
    Turn,
    register,
)
from worker.turn import now

REPLY_GRACE_S = 2.0
"""How long a record waits for what usually follows it at once: a turn for its fields (they
stream after the reply's string closes: 20-40 tokens, 0.4-0.8 s at 50 tok/s), the user's
message for the reply. The window a kill -9 could lose, and no longer."""


@register
class RecordsSink(Sink):
    name = "records"
    order = 20

    def __init__(self, outputs: SessionOutputs) -> None:
        super().__init__(outputs)
        self._waiting_turns: dict[int, asyncio.TimerHandle] = {}
        self._waiting_transcript: asyncio.TimerHandle | None = None

    def session_started(self, start: SessionStart) -> None:
        config = start.config
        self.outputs.submit(
            Record(
                SESSIONS,
                start.session_id,
                {
                    "session_id": start.session_id,
                    "room": start.room,
                    "agent_id": config.agent_id,
                    "agent_version": config.version,
                    "routing": start.routing,
                    "user_id": start.user_id,
                    "status": "active",
                    "started_at": start.started_at,
                    **start.extra,
                },
            )
        )
        self.outputs.audit("session.started", start.started_at)

    # -- the transcript --------------------------------------------------------------

    def transcript_changed(self, transcript: Transcript) -> None:
        """The session record's transcript, as it grows: a worker killed with -9 never writes
        the end of its session, and the stale-session sweep marks it `aborted` with the
        transcript as it was. One `$set` of at most `max_transcript_chars` (the kept, bounded
        transcript), rather than turns joined into a transcript later: the session record
        stays the one place that has the whole conversation (greeting, unanswered messages and
        goodbye included, which no turn holds), and reading an aborted session costs no query
        over `turns`."""
        if self._waiting_transcript is not None:
            self._waiting_transcript.cancel()
            self._waiting_transcript = None
        fields = transcript.as_record()
        if transcript.awaiting_reply:
            self._waiting_transcript = asyncio.get_running_loop().call_later(
                REPLY_GRACE_S, self._write_transcript, fields
            )
        else:
            self._write_transcript(fields)

    def _write_transcript(self, fields: dict[str, Any]) -> None:
        self._waiting_transcript = None
        self.outputs.submit(Record(SESSIONS, self.outputs.session_id, fields))

    # -- turns -----------------------------------------------------------------------

    def turn_replied(self, turn: Turn) -> None:
        if turn.failure is None:
            self._waiting_turns[turn.index] = asyncio.get_running_loop().call_later(
                REPLY_GRACE_S, self._write_replied, turn
            )

    def _write_replied(self, turn: Turn) -> None:
        """The fields are late: the turn as the user lived it, `replied`, so a worker killed
        while they are still being filled (seconds on a busy CPU) leaves the reply stored."""
        self._waiting_turns.pop(turn.index, None)
        if not turn.finished:
            self.outputs.submit(
                Record(
                    TURNS,
                    _turn_id(turn),
                    _exchange(turn)
                    | {"fields": {SYSTEM_RESPONSE: turn.reply}, "status": "replied"},
                )
            )

    async def turn_finished(self, turn: Turn) -> None:
        waiting = self._waiting_turns.pop(turn.index, None)
        if waiting is not None:
            waiting.cancel()
        outcome: dict[str, Any] = {
            "fields": turn.fields,
            "status": turn.status,
            "error": turn.error,
            "attempts": turn.attempts,
        }
        if turn.failure is not None:
            outcome |= {
                "error": turn.failure.error,
                "error_kind": turn.failure.kind,
                "attempts": turn.failure.attempts,
                "waited_s": round(turn.failure.waited_s, 3),
            }
        else:
            outcome["filled_at"] = turn.filled_at or now()
        self.outputs.submit(Record(TURNS, _turn_id(turn), _exchange(turn) | outcome))

    def session_ended(self, end: SessionEnd) -> None:
        for waiting in self._waiting_turns.values():
            waiting.cancel()
        self._waiting_turns.clear()
        if self._waiting_transcript is not None:
            self._waiting_transcript.cancel()
            self._waiting_transcript = None
        self.outputs.submit(
            Record(
                SESSIONS,
                end.session_id,
                {
                    "status": "ended",
                    "ended_at": end.ended_at,
                    "end_reason": end.reason,
                    "agent_id": end.config.agent_id,
                    **end.transcript.as_record(),
                    "summary": end.summary,
                    "handoffs": end.handoffs,
                    "escalations": end.escalations,
                    **({"end_detail": end.detail} if end.detail is not None else {}),
                    "usage": {
                        "prompt_tokens": end.usage.prompt_tokens,
                        "completion_tokens": end.usage.completion_tokens,
                    },
                    "cost": end.cost.as_dict(),
                },
            )
        )
        self.outputs.audit(
            "session.ended",
            end.ended_at,
            {"end_reason": end.reason, "turns": end.transcript.turn_count},
        )


def _turn_id(turn: Turn) -> str:
    return f"{turn.session_id}:{turn.index}"


def _exchange(turn: Turn) -> dict[str, Any]:
    """A turn's record as the user lived it: who, what they said (and whether it was cut),
    what they were told, the tools that led there and when each stage happened."""
    config = turn.config
    return {
        "session_id": turn.session_id,
        "agent_id": config.agent_id,
        "agent_version": config.version,
        "schema_id": config.turn_schema.schema_id,
        "user_id": turn.user_id,
        "turn_index": turn.index,
        "user_text": turn.user_text,
        "user_text_truncated": turn.user_text_cut_from is not None,
        "user_text_original_chars": turn.user_text_cut_from,
        "reply": turn.reply,
        "tool_calls": turn.tool_call_dicts(),
        **turn.latency_fields(),
        "created_at": turn.replied_at,
    }
