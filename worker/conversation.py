"""One conversation in one room, from the greeting to the summary.

Listens to the AgentSession, keeps the transcript, runs the structured-turn pipeline in order
(one turn at a time, off the conversation's critical path), hands the session to another agent
type when an intent matches, says goodbye on idle timeout, and at the end publishes the
summary and writes the session record. Every write goes through the buffered RecordWriter.

It is also what the built-in tools act on (`SessionControls`, worker/tools/): `end_session`,
`transfer` (the model hands the conversation to another type) and `escalate`. A turn is the
user's message, the tool calls that led to the reply (drained from the session's
ToolCallLog when the reply arrives) and the reply with its fields; a generation that called
tools and also said something ("let me look that up") is kept in the transcript, and the
turn waits for the reply that follows the tools' results.

What it keeps is bounded by the agent type's config: a user message is cut to
`max_user_message_chars` as it arrives (the turn record says so), and the transcript keeps the
newest messages within `max_transcript_chars`, counting the ones it let go, so a session
that runs for days still writes a record far below MongoDB's 16 MB document limit.

Nothing said is lost when the worker dies (kill -9, node loss): each turn is stored the moment
its reply ends (`replied`, then completed with its fields), and the session record's transcript
is rewritten with every message, so the stale-session sweep's `aborted` record keeps it.

What a frontend sees when the worker dies, measured with kill -9 on the local LiveKit v1.13.5
(tests/worker/test_faults.py): nothing at first. The agent participant stays in the room for
~23 s (23.2 s) until LiveKit gives up on its lost connection, its `lk.agent.state` attribute
frozen at its last value (`listening`), and no connection-quality `lost` event came for a
text session in that time. Then the room gets `ParticipantDisconnected` for a participant of
kind AGENT. A dead agent sends no goodbye, so that event is the signal to use: a frontend
watches the agent participant's disconnect, tells its user the assistant was disconnected
and offers to continue in a new room (a new dispatch; the old session is `aborted`, its turns
and transcript stored). Sooner, and only as a hint, a frontend can notice that a message it
sent does not move the agent's `lk.agent.state` to `thinking` within a few seconds (a live
agent sets it as it starts on the reply; not measured here).
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from livekit import rtc
from livekit.agents import AgentSession, ConversationItemAddedEvent, llm
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import CloseEvent, SessionUsageUpdatedEvent, UserStateChangedEvent
from livekit.agents.voice.room_io import TextInputEvent

from agent_configs.cloudevents import (
    LAST_SEQ,
    EventType,
    escalated_data,
    handoff_data,
    session_event,
    session_report_data,
    session_started_data,
    turn_data,
)
from agent_configs.egress import EgressPolicy
from agent_configs.models import SYSTEM_RESPONSE, AgentConfig
from worker import metrics
from worker.latency import LatencyMarks, mark_received, turn_start
from worker.records import EVENTS, SESSIONS, TURNS, Record, RecordWriter, outbox_record
from worker.session import TRUNCATED_FROM, ConfiguredAgent, ReplyFailure, is_voice, user_message
from worker.tools import ToolCallLog, ToolContext, build_tools
from worker.turns import (
    SUMMARY_TOPIC,
    TURN_TOPIC,
    Message,
    StreamedTurn,
    StructuredCaller,
    TurnFiller,
    Usage,
    summarize,
)

logger = logging.getLogger("switchboard.conversation")

GOODBYE = "It looks like you've stepped away, so I'll end our conversation here. Goodbye!"
HANDOFF_TOPIC = "agent-handoff"
ESCALATION_TOPIC = "agent-escalation"
TRANSFER = "transfer_to_agent"
AGENT_ENDED = "agent_ended"
ESCALATED = "escalated"
"""`end_reason` of a session an `escalate_to_human` tool with `then: end` ended."""
HOLD_MESSAGE = (
    "I've asked a colleague to take over. Please hold on, someone will be with you shortly."
)
END_TOPIC = "switchboard.end"
"""A data packet from the user on this topic ends the session (payload ignored, e.g. `{}`)."""
USER_ENDED = "user_ended"
FINISH_TURNS_TIMEOUT_S = 30.0
SUMMARY_TIMEOUT_S = 30.0

HandoffFinder = Callable[[str, str], Awaitable[tuple[AgentConfig, dict[str, Any]] | None]]
"""`await find(current_agent_id, user_text)` -> (target config, match details) or None."""

AgentFactory = Callable[[AgentConfig, list[Message]], Awaitable[ConfiguredAgent]]
"""`await build(config, history)` -> a ready agent of that type that continues `history`."""

SlotMover = Callable[[AgentConfig], Awaitable[bool]]
"""`await move(target)` -> whether the session now holds a capacity slot of the target type
(False: the target is at `max_concurrent_sessions`, the session keeps its slot)."""

TargetLoader = Callable[[str], Awaitable[AgentConfig]]
"""`await load(agent_id)` -> the config of a transfer target, read the way routing reads one;
raises TransferRefused when it cannot take a session (unknown, paused, refused by the egress
policy, outside the pool)."""


class TransferRefused(Exception):
    """Why a transfer target cannot take the conversation, in words the model can pass on."""


@dataclass(frozen=True)
class _PendingTurn:
    """One turn, from the user's message to its fields: everything downstream (the records,
    the `agent-turn` payload) reads it."""

    index: int
    agent: ConfiguredAgent
    """The agent that replied: after a transfer the conversation's current one is another."""
    history: list[Message]
    reply: str
    user_text: str | None
    user_text_cut_from: int | None
    """The user message's length before it was cut to `max_user_message_chars`, if it was."""
    streamed: asyncio.Future[StreamedTurn] | None
    latency: LatencyMarks
    """When the user's message came and the reply's text, audio and fields followed."""
    tool_calls: list[dict[str, Any]]
    """The tool calls that led to the reply, as ToolCallRecord.as_dict()."""

    def latency_fields(self) -> dict[str, Any]:
        return {"latency_ms": self.latency.as_ms(), "latency_from": self.latency.origin}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Conversation:
    session_id: str
    room: rtc.Room
    session: AgentSession
    agent: ConfiguredAgent
    routing: dict[str, Any]
    user_id: str | None
    writer: RecordWriter
    build_agent: AgentFactory
    find_handoff: HandoffFinder | None = None
    move_slot: SlotMover | None = None
    load_target: TargetLoader | None = None
    egress: EgressPolicy | None = None
    """What the agent's tools may reach (worker settings); None: the agent gets no tools."""
    tool_log: ToolCallLog = field(default_factory=ToolCallLog)
    history: list[Message] = field(default_factory=list)
    """The newest messages within `max_transcript_chars` (see `_remember`)."""
    transcript_dropped: int = 0
    usage: Usage = field(default_factory=Usage)
    end_reason: str | None = None
    end_detail: str | None = None
    """Why the agent ended the session (`end_session`'s reason), with `end_reason: agent_ended`."""
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    _turn_index: int = 0
    _history_chars: int = 0
    _awaiting_reply_to: str | None = None
    _awaiting_cut_from: int | None = None
    _awaiting_latency: LatencyMarks | None = None
    _turns: asyncio.Queue[_PendingTurn] = field(default_factory=asyncio.Queue)
    _turn_task: asyncio.Task[None] | None = None
    _usage_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _callers: dict[str, StructuredCaller] = field(default_factory=dict)
    _summary: str | None = None
    _concluded: bool = False
    _started_at: datetime | None = None
    _event_seq: int = 0
    """The next outbox event's `seq` in this session (see agent_configs/cloudevents.py)."""
    _turn_reports: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Each turn as `turn.completed` describes it, for the end-of-call report."""
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def config(self) -> AgentConfig:
        return self.agent.config

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(
            logger,
            {
                "session_id": self.session_id,
                "room": self.room.name,
                "agent_id": self.config.agent_id,
            },
        )

    # -- lifecycle ---------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to the session's events; call before `session.start`."""
        self.session.on("conversation_item_added", self._on_item_added)
        self.session.on("user_state_changed", self._on_user_state)
        self.session.on("session_usage_updated", self._on_usage)
        self.session.on("close", self._on_close)
        self.room.on("data_received", self._on_data)
        self._turn_task = asyncio.create_task(self._fill_turns_in_order(), name="switchboard.turns")
        self.agent.on_entered = self._entered
        if self.find_handoff is not None and self.routing.get("strategy") == "default":
            self.agent.handoff_check = self._maybe_hand_off

    async def equip(self, agent: ConfiguredAgent) -> None:
        """Give `agent` its config's tools, bound to this session (before it becomes active).
        A tool that cannot be built (a plugin not installed, say) leaves the agent without
        tools rather than the room without an agent; the log says why."""
        if not agent.config.tools or self.egress is None:
            return
        context = ToolContext(
            session_id=self.session_id,
            agent_id=agent.config.agent_id,
            user_id=self.user_id,
            room=self.room.name,
            egress=self.egress,
            log=self.tool_log,
            controls=self,
            say=self._say_while_waiting,
        )
        try:
            tools = await build_tools(agent.config, context)
        except Exception:
            self.log.exception(
                "the tools of %s could not be built: it runs without them", agent.config.agent_id
            )
            return
        await agent.update_tools(tools)

    async def _say_while_waiting(self, text: str) -> None:
        """A tool's `waiting_message`: said at once (livekit lets a new speech start while a
        tool runs, the reply's generation being done), not added to the model's context."""
        with contextlib.suppress(RuntimeError):  # the session is closing
            self.session.say(text, allow_interruptions=False, add_to_chat_ctx=False)

    async def _entered(self, agent: ConfiguredAgent) -> None:
        """livekit made `agent` the active one: from now on the conversation's turns are its.
        Switching here, not when a transfer is decided, keeps the old agent's last reply (its
        answer to the transfer tool) on the old agent's turn."""
        self.agent = agent

    def record_start(self, started_at: datetime, extra: dict[str, Any]) -> None:
        self.writer.submit(
            Record(
                SESSIONS,
                self.session_id,
                {
                    "session_id": self.session_id,
                    "room": self.room.name,
                    "agent_id": self.config.agent_id,
                    "agent_version": self.config.version,
                    "routing": self.routing,
                    "user_id": self.user_id,
                    "status": "active",
                    "started_at": started_at,
                    **extra,
                },
            )
        )
        self._record_event("session.started", started_at)
        self._started_at = started_at
        data = session_started_data(
            session_id=self.session_id,
            room=self.room.name,
            agent_id=self.config.agent_id,
            agent_version=self.config.version,
            user_id=self.user_id,
            started_at=started_at,
            modalities=list(extra.get("modalities", self.config.modalities)),
            routing=self.routing,
        )
        self._emit(EventType.SESSION_STARTED, "started", data, at=started_at)

    async def conclude(self) -> None:
        """The end of the session, while the room is still connected: the structured turns
        still running are finished (their `agent-turn` payloads still reach the room), the
        summary is made and published to whoever is still in the room.

        Runs from the job's `on_session_end` hook: livekit calls it once the AgentSession has
        closed and before it disconnects the room. Job shutdown callbacks (`finish`) run only
        after that disconnect, so a summary published there never arrived, whichever way the
        session ended. When the user left, nobody is there to receive it: it is only recorded."""
        if self._concluded:
            return
        self._concluded = True
        await self._drain_turns()
        self._summary = await self._summary_text()
        if self._summary and self.room.isconnected() and self.room.remote_participants:
            payload = {
                "session_id": self.session_id,
                "agent_id": self.config.agent_id,
                "summary": self._summary,
            }
            await self._publish(SUMMARY_TOPIC, payload)

    async def finish(self, shutdown_reason: str) -> None:
        """Runs once at job shutdown (the room is gone by then): record the end, flush."""
        reason = self.end_reason or shutdown_reason or "shutdown"
        await self.conclude()  # a no-op when on_session_end ran it, as it normally does
        self.writer.submit(
            Record(
                SESSIONS,
                self.session_id,
                {
                    "status": "ended",
                    "ended_at": _now(),
                    "end_reason": reason,
                    "agent_id": self.config.agent_id,
                    **self._transcript_fields(),
                    "summary": self._summary,
                    "handoffs": self.handoffs,
                    "escalations": self.escalations,
                    **({"end_detail": self.end_detail} if self.end_detail is not None else {}),
                    "usage": {
                        "prompt_tokens": self.usage.prompt_tokens,
                        "completion_tokens": self.usage.completion_tokens,
                    },
                },
            )
        )
        self._record_event(
            "session.ended", _now(), {"end_reason": reason, "turns": self._turn_index}
        )
        self._emit_report(reason)
        self.log.info("session ended (%s), %d turns", reason, self._turn_index)

    def _emit(
        self,
        kind: EventType,
        suffix: str,
        data: dict[str, Any],
        *,
        seq: int | None = None,
        at: datetime | None = None,
        agent_id: str | None = None,
    ) -> None:
        """One outbox event of this session, through the record writer: queued behind the
        records it describes, spooled and replayed with them when MongoDB is away. The
        event's `agent_id` (what subscriptions filter on) is the current agent's unless said."""
        if seq is None:
            seq, self._event_seq = self._event_seq, self._event_seq + 1
        agent_id = agent_id or self.config.agent_id
        event = session_event(kind, self.session_id, agent_id, suffix, seq, data, at)
        self.writer.submit(outbox_record(event))

    def _emit_report(self, end_reason: str) -> None:
        """`session.ended`: the end-of-call report, from what this process kept."""
        data = session_report_data(
            session_id=self.session_id,
            room=self.room.name,
            agent_id=self.config.agent_id,
            agent_version=self.config.version,
            user_id=self.user_id,
            started_at=self._started_at,
            ended_at=_now(),
            end_reason=end_reason,
            end_detail=self.end_detail,
            summary=self._summary,
            transcript=self._transcript_fields()["transcript"],
            transcript_dropped=self.transcript_dropped,
            turns=[self._turn_reports[index] for index in sorted(self._turn_reports)],
            usage={
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            routing=self.routing,
            handoffs=self.handoffs,
            escalations=self.escalations,
        )
        self._emit(EventType.SESSION_ENDED, "ended", data, seq=LAST_SEQ)

    def _report_turn(
        self, turn: _PendingTurn, status: str, fields: dict[str, Any], **errors: str | None
    ) -> dict[str, Any]:
        """The turn as `turn.completed` (and the report's `turns`) describe it; kept for the report."""
        config = turn.agent.config
        report = turn_data(
            session_id=self.session_id,
            turn_index=turn.index,
            agent_id=config.agent_id,
            agent_version=config.version,
            user_id=self.user_id,
            user_text=turn.user_text,
            user_text_truncated=turn.user_text_cut_from is not None,
            reply=turn.reply,
            status=status,
            fields=fields,
            tool_calls=turn.tool_calls,
            latency_ms=turn.latency.as_ms(),
            latency_from=turn.latency.origin,
            error=errors.get("error"),
            error_kind=errors.get("error_kind"),
        )
        self._turn_reports[turn.index] = report
        return report

    def _transcript_fields(self) -> dict[str, Any]:
        return {
            "transcript": [{"role": m.role, "text": m.text} for m in self.history],
            "transcript_dropped": self.transcript_dropped,
            "turn_count": self._turn_index,
        }

    def _record_event(self, kind: str, at: datetime, details: dict[str, Any] | None = None) -> None:
        suffix = kind.split(".")[-1]
        self.writer.submit(
            Record(
                EVENTS,
                f"{self.session_id}:{suffix}",
                {
                    "type": kind,
                    "agent_id": self.config.agent_id,
                    "session_id": self.session_id,
                    "room": self.room.name,
                    "actor": "worker",
                    "at": at,
                    "details": details or {},
                },
            )
        )

    # -- events ------------------------------------------------------------------------

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        text = (item.text_content or "").strip()
        if not text:
            if (
                item.role == "assistant"
                and self._awaiting_reply_to is not None
                and not self.agent.generation_called_tools
            ):
                # The tiny local model can answer "\n" (its grammar allows any non-empty
                # string): the user saw nothing, so the turn is stored failed, not dropped.
                self.agent.failed_reply = ReplyFailure(
                    "empty_reply", "the model's reply was only whitespace", 1, 0.0
                )
            else:
                return
        else:
            self._remember(Message(item.role, text))
        if (
            item.role == "assistant"
            and self._awaiting_reply_to is not None
            and self.agent.generation_called_tools
        ):
            # words said before tools run: the turn's reply is the one after their results
            self._record_transcript()
            return
        failure = None
        if item.role == "assistant":
            failure, self.agent.failed_reply = self.agent.failed_reply, None
        ttft = (item.metrics or {}).get("llm_node_ttft")
        if item.role == "assistant" and ttft is not None and failure is None:
            metrics.LLM_TTFT.labels(self.agent.models.endpoints[0].model).observe(max(ttft, 0.0))
        if item.role == "user":
            self._awaiting_reply_to = text
            self._awaiting_cut_from = item.extra.get(TRUNCATED_FROM)
            self._awaiting_latency = LatencyMarks(*turn_start(item))
        elif self._awaiting_reply_to is not None:
            streamed, self.agent.streamed_turn = self.agent.streamed_turn, None
            latency = self._awaiting_latency or LatencyMarks(item.created_at, "transcript")
            latency.first_text_at, self.agent.first_text_at = self.agent.first_text_at, None
            if is_voice(self.config):  # in a text session livekit's mark is the first text out
                latency.first_audio_at = (item.metrics or {}).get("started_speaking_at")
            turn = _PendingTurn(
                self._turn_index,
                self.agent,
                list(self.history),
                text,
                self._awaiting_reply_to,
                self._awaiting_cut_from,
                streamed,
                latency,
                [call.as_dict() for call in self.tool_log.drain()],
            )
            self._turn_index += 1
            self._awaiting_reply_to = None
            self._awaiting_cut_from = None
            self._awaiting_latency = None
            if failure is None:
                self._record_reply(turn)
                self._turns.put_nowait(turn)  # its fields, in the background
            else:
                self._record_failed_reply(turn, failure)
        self._record_transcript()

    def _record_transcript(self) -> None:
        """The session record's transcript, as it grows: a worker killed with -9 never writes
        the end of its session, and the stale-session sweep marks it `aborted` with the
        transcript as it was at the last message. One `$set` per message of at most
        `max_transcript_chars` (the kept, bounded transcript), rather than turns joined into
        a transcript later: the session record stays the one place that has the whole
        conversation (greeting, unanswered messages and goodbye included, which no turn
        holds), and reading an aborted session costs no query over `turns`."""
        self.writer.submit(Record(SESSIONS, self.session_id, self._transcript_fields()))

    def _turn_identity(self, turn: _PendingTurn) -> dict[str, Any]:
        config = turn.agent.config
        return {
            "session_id": self.session_id,
            "agent_id": config.agent_id,
            "agent_version": config.version,
            "schema_id": config.turn_schema.schema_id,
            "user_id": self.user_id,
            "turn_index": turn.index,
        }

    def _record_reply(self, turn: _PendingTurn) -> None:
        """The turn as soon as its reply has ended, before its fields: a worker killed while
        they are still being filled (seconds on a busy CPU) left the user with replies and
        the database with none of them. `_fill_one` completes the same record (same `_id`,
        an idempotent `$set`), so `status` goes from `replied` to `ok` or `failed`."""
        self._record_exchange(turn, {"fields": {SYSTEM_RESPONSE: turn.reply}, "status": "replied"})
        self._report_turn(turn, "replied", {SYSTEM_RESPONSE: turn.reply})

    def _record_exchange(self, turn: _PendingTurn, outcome: dict[str, Any]) -> None:
        """A turn's record as the user lived it: what they said (and whether it was cut), what
        they were told, and `outcome` (status, fields, error)."""
        self.writer.submit(
            Record(
                TURNS,
                f"{self.session_id}:{turn.index}",
                {
                    **self._turn_identity(turn),
                    "user_text": turn.user_text,
                    "user_text_truncated": turn.user_text_cut_from is not None,
                    "user_text_original_chars": turn.user_text_cut_from,
                    "reply": turn.reply,
                    "tool_calls": turn.tool_calls,
                    **turn.latency_fields(),
                    **outcome,
                    "created_at": _now(),
                },
            )
        )

    def _record_failed_reply(self, turn: _PendingTurn, failure: ReplyFailure) -> None:
        """No model answered (the user got the `llm_unavailable` message), or one answered
        only whitespace (`empty_reply`). The turn is stored `failed` with the error kind (no
        fields to fill: there was no answer), and the room gets an `agent-turn` saying so."""
        self._record_exchange(
            turn,
            {
                "fields": {},
                "status": "failed",
                "error_kind": failure.kind,
                "error": failure.error,
                "attempts": failure.attempts,
                "waited_s": round(failure.waited_s, 3),
            },
        )
        metrics.LLM_ERRORS.labels(turn.agent.models.endpoints[0].model).inc()
        report = self._report_turn(turn, "failed", {}, error=failure.error, error_kind=failure.kind)
        self._emit(
            EventType.TURN_COMPLETED, f"turn:{turn.index}", report, agent_id=report["agent_id"]
        )
        payload = {
            "session_id": self.session_id,
            "agent_id": turn.agent.config.agent_id,
            "turn_index": turn.index,
            "fields": {},
            "tool_calls": turn.tool_calls,
            "status": "failed",
            "error_kind": failure.kind,
            **turn.latency_fields(),
        }
        task = asyncio.create_task(
            self._publish(TURN_TOPIC, payload), name="switchboard.failed_turn"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _remember(self, message: Message) -> None:
        """Append to the transcript, then let go of the oldest messages until it is within
        `max_transcript_chars` again; `transcript_dropped` counts them. The newest message is
        always kept (cut to the cap if it alone is longer). The summary, the structured turns
        and a hand-off read this transcript, so they see the newest part of a long session:
        its memory in the job process stays bounded too."""
        cap = self.config.max_transcript_chars
        if len(message.text) > cap:
            message = Message(message.role, message.text[:cap])
        self.history.append(message)
        self._history_chars += len(message.text)
        while self._history_chars > cap:
            self._history_chars -= len(self.history.pop(0).text)
            self.transcript_dropped += 1

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "away" and self.end_reason is None:
            self.end_reason = "idle_timeout"
            asyncio.create_task(self._say_goodbye(), name="switchboard.goodbye")

    def _on_usage(self, event: SessionUsageUpdatedEvent) -> None:
        """Usage arrives as running totals per model; the counters get the increase."""
        for usage in event.usage.model_usage:
            if not isinstance(usage, LLMModelUsage):
                continue
            before = self._usage_seen.get(usage.model, (0, 0))
            prompt, completion = usage.input_tokens - before[0], usage.output_tokens - before[1]
            self._usage_seen[usage.model] = (usage.input_tokens, usage.output_tokens)
            metrics.LLM_TOKENS.labels(usage.model, "prompt").inc(max(prompt, 0))
            metrics.LLM_TOKENS.labels(usage.model, "completion").inc(max(completion, 0))
            self.usage.prompt_tokens += max(prompt, 0)
            self.usage.completion_tokens += max(completion, 0)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        """`switchboard.end` from the user: end the session now, with the user still in the room.

        A frontend that wants the summary cannot simply leave (nobody would be there to
        receive it) nor wait for the idle timeout. This closes the session the way livekit
        closes it on request: the reply being spoken or typed is finished first (`drain`;
        there is no configured goodbye to add), then `on_session_end` finishes the turns still
        filling, publishes `conversation-summary` to the room, and the agent leaves; the
        session record says `end_reason: user_ended`. Only the participant the session talks
        to may end it (packets sent with a server SDK have no participant and are ignored)."""
        if packet.topic != END_TOPIC or not self._from_the_user(packet.participant):
            return
        if self.end_reason is not None:  # already ending (idle goodbye, a second click)
            return
        self.end_reason = USER_ENDED
        self.log.info("the user ended the session")
        self.session.shutdown(drain=True)

    def _from_the_user(self, participant: rtc.RemoteParticipant | None) -> bool:
        if participant is None or participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return False
        try:
            linked = self.session.room_io.linked_participant
        except RuntimeError:  # not started with a room: nobody to compare with
            return True
        return linked is None or linked.identity == participant.identity

    def _on_close(self, event: CloseEvent) -> None:
        if self.end_reason is None:
            self.end_reason = str(event.reason.value)
        if event.error is not None:
            self.log.warning("session closed with error: %s", event.error)

    async def _say_goodbye(self) -> None:
        try:
            handle = self.session.say(GOODBYE, allow_interruptions=False)
            await handle.wait_for_playout()
        finally:
            self.session.shutdown()

    # -- structured turns --------------------------------------------------------------

    async def _fill_turns_in_order(self) -> None:
        while True:
            turn = await self._turns.get()
            try:
                await self._fill_one(turn)
            except Exception:  # a broken turn must never end the conversation
                self.log.exception("structured turn %d failed", turn.index)
            finally:
                self._turns.task_done()

    async def _fill_one(self, turn: _PendingTurn) -> None:
        config = turn.agent.config
        caller = self._caller(turn.agent)
        index = turn.index
        streamed = await turn.streamed if turn.streamed is not None else None
        filled = await TurnFiller(caller, config.turn_schema, config.name).fill(
            turn.history, turn.reply, streamed
        )
        turn.latency.fields_done()
        if filled.status == "failed":
            metrics.TURN_EXTRACTION_FAILURES.labels(config.agent_id).inc()
        payload = {
            "session_id": self.session_id,
            "agent_id": config.agent_id,
            "turn_index": index,
            "fields": filled.fields,
            "tool_calls": turn.tool_calls,
            **turn.latency_fields(),
        }
        if filled.status == "failed":
            payload["status"] = "failed"
        truncated = turn.user_text_cut_from is not None
        if truncated:  # the frontend can tell its user that only the start was read
            payload["user_text_truncated"] = True
        await self._publish(TURN_TOPIC, payload)
        self.writer.submit(  # completes the record `_record_reply` wrote when the reply ended
            Record(
                TURNS,
                f"{self.session_id}:{index}",
                {
                    **self._turn_identity(turn),
                    "fields": filled.fields,
                    "status": filled.status,
                    "error": filled.error,
                    "attempts": filled.attempts,
                    **turn.latency_fields(),
                    "filled_at": _now(),
                },
            )
        )
        report = self._report_turn(turn, filled.status, filled.fields, error=filled.error)
        self._emit(EventType.TURN_COMPLETED, f"turn:{index}", report, agent_id=config.agent_id)

    def _caller(self, agent: ConfiguredAgent | None = None) -> StructuredCaller:
        """One caller per agent type in this session (a hand-off brings its own models), reused
        by every structured turn and the summary; its HTTP clients are the process's shared ones."""
        agent = agent or self.agent
        agent_id = agent.config.agent_id
        if agent_id not in self._callers:
            self._callers[agent_id] = StructuredCaller(agent.models.endpoints, usage=self.usage)
        return self._callers[agent_id]

    async def _drain_turns(self) -> None:
        try:
            await asyncio.wait_for(self._turns.join(), FINISH_TURNS_TIMEOUT_S)
        except TimeoutError:
            self.log.warning("%d structured turns unfinished at shutdown", self._turns.qsize())
        if self._turn_task is not None:
            self._turn_task.cancel()

    async def _summary_text(self) -> str | None:
        if not self.config.summary.enabled:
            return None
        caller = self._caller()
        try:
            return await asyncio.wait_for(
                summarize(caller, self.history, self.config.name, self.config.summary.max_tokens),
                SUMMARY_TIMEOUT_S,
            )
        except Exception as exc:  # the record is written even without a summary
            self.log.warning("summary failed: %s", exc)
            return None

    # -- hand-off ----------------------------------------------------------------------

    async def on_text_input(self, session: AgentSession, event: TextInputEvent) -> None:
        """`lk.chat` messages: cut to `max_user_message_chars`, hand off first when an intent
        matches, then answer."""
        received_at = time.time()  # the turn's latency starts here, whatever waits follow
        cap = self.config.max_user_message_chars
        check = self.agent.handoff_check
        if check is not None:
            target = await check(self.agent, event.text[:cap])
            if target is not None:
                target.pending_user_input = mark_received(
                    user_message(event.text, cap), received_at
                )
                session.update_agent(target)
                return
        with contextlib.suppress(RuntimeError):  # the greeting is not interruptible: reply after it
            await session.interrupt()
        # made now, not before the awaits: livekit places a message by its `created_at`
        session.generate_reply(user_input=mark_received(user_message(event.text, cap), received_at))

    async def _maybe_hand_off(
        self, current: ConfiguredAgent, user_text: str
    ) -> ConfiguredAgent | None:
        """Only the first user message of a session routed by `default` is matched.

        Kept beside `transfer_to_agent` as a cheap pre-filter: a keyword match costs no LLM
        call and decides before the first reply, so a user whose first words say where they
        belong is answered by the right type in that very turn, instead of one reply of the
        wrong type telling them about a transfer (two model calls, then the target's own).
        Types without `intents` never pay for it; anything subtler is the model's to decide.

        A hand-off is a session of the target type, so it needs one of the target's
        `max_concurrent_sessions` slots (and gives back the current type's). When the target
        is full, or its agent cannot be built, the current agent keeps the conversation and
        answers the message; the log says why."""
        current.handoff_check = None
        assert self.find_handoff is not None
        found = await self.find_handoff(current.config.agent_id, user_text)
        if found is None:
            return None
        target_config, match = found
        intent = match.get("intent")
        try:
            target = await self.build_agent(target_config, list(self.history))
        except Exception as exc:
            self.log.warning(
                "no hand-off to %s on intent %s: %s", target_config.agent_id, intent, exc
            )
            return None
        if self.move_slot is not None and not await self.move_slot(target_config):
            self.log.info(
                "no hand-off to %s on intent %s: full (max_concurrent_sessions=%s)",
                target_config.agent_id,
                intent,
                target_config.max_concurrent_sessions,
            )
            return None
        await self.equip(target)
        target.on_entered = self._entered
        self.agent = target  # at once: the message that matched is the target's to answer
        await self._record_handoff(current.config, target_config, "intent", {"match": match})
        self.log.info("handed off to %s on intent %s", target_config.agent_id, match.get("intent"))
        return target

    async def _record_handoff(
        self, source: AgentConfig, target: AgentConfig, strategy: str, details: dict[str, Any]
    ) -> None:
        """One hand-off, whichever way it was decided: the session record's `handoffs`, the
        agent participant's attributes, `agent-handoff` to the room, the routing metric."""
        handoff = {
            "from_agent_id": source.agent_id,
            "to_agent_id": target.agent_id,
            "strategy": strategy,
            **details,
            "at": _now(),
        }
        self.handoffs.append(handoff)
        await self.room.local_participant.set_attributes(
            {"switchboard.agent_id": target.agent_id, "switchboard.strategy": strategy}
        )
        await self._publish(
            HANDOFF_TOPIC,
            {"session_id": self.session_id, **handoff, "at": handoff["at"].isoformat()},
        )
        self.writer.submit(
            Record(
                SESSIONS, self.session_id, {"agent_id": target.agent_id, "handoffs": self.handoffs}
            )
        )
        number = len(self.handoffs) - 1
        data = handoff_data(session_id=self.session_id, handoff=handoff)
        self._emit(EventType.SESSION_HANDOFF, f"handoff:{number}", data, agent_id=source.agent_id)
        metrics.ROUTING_DECISIONS.labels(target.agent_id, strategy).inc()

    # -- what the built-in tools do (SessionControls, worker/tools/) ----------------------

    async def end_session(self, reason: str, goodbye: str | None) -> str:
        """The model ends the session: its reply to this tool's result is said, then the
        configured `goodbye` (if any), then the session closes as a user's `switchboard.end`
        does (summary published, `end_reason: agent_ended`, `end_detail`: the reason)."""
        if self.end_reason is not None:
            return "The session is already ending."
        self.end_reason, self.end_detail = AGENT_ENDED, reason
        self.log.info("the agent ends the session: %s", reason)
        self._in_background(self._close_after_this_reply(goodbye), "switchboard.agent_end")
        if goodbye:
            return "The session ends now and the goodbye is said for you: add nothing more."
        return "The session ends after this reply: say goodbye to the user in one short sentence."

    async def transfer(
        self, target: str, reason: str, context: Literal["full", "summary", "none"]
    ) -> str:
        """The model hands the conversation to `target` (one of its tool's `targets`).

        The target is read and checked the way routing does (`load_target`), then its agent
        is built with the context the tool allows (`full`: the transcript; `summary`: a
        summary of it added to the target's instructions; `none`: nothing), then a capacity
        slot of the target is claimed (the current type's is given back). Any refusal is the
        tool's result, and the current agent keeps the conversation. On success the current
        agent answers the result (telling the user who takes over), then livekit switches
        agents: the target greets when it starts afresh (`none`, with a greeting) and
        otherwise continues the conversation with a reply of its own."""
        source = self.agent.config
        if target == source.agent_id:
            return f"Transfer refused: the conversation is already with {target}."
        if self.load_target is None:
            return "Transfer refused: this session cannot transfer."
        try:
            target_config = await self.load_target(target)
        except TransferRefused as exc:
            self.log.info("no transfer to %s: %s", target, exc)
            return f"Transfer refused: {target} cannot take the conversation ({exc}). Keep helping the user."
        note = await self._handover_note(context)
        try:
            new_agent = await self.build_agent(
                target_config, list(self.history) if context == "full" else []
            )
        except Exception as exc:
            self.log.warning("no transfer to %s: %s", target, exc)
            return f"Transfer refused: {target} is unavailable. Keep helping the user."
        if note:
            await new_agent.update_instructions(f"{new_agent.instructions}\n\n{note}")
        if self.move_slot is not None and not await self.move_slot(target_config):
            self.log.info(
                "no transfer to %s: full (max_concurrent_sessions=%s)",
                target,
                target_config.max_concurrent_sessions,
            )
            return f"Transfer refused: {target} is fully booked right now. Keep helping the user."
        await self.equip(new_agent)
        new_agent.on_entered = self._entered_after_transfer(context)
        await self._record_handoff(
            source, target_config, TRANSFER, {"reason": reason, "context": context}
        )
        self.log.info("transferred to %s (%s context): %s", target, context, reason)
        self.session.update_agent(new_agent)
        return (
            f"Transferred: {target_config.name} takes over after your reply. Tell the user so in one "
            "short sentence, and do not answer their question yourself."
        )

    async def _handover_note(self, context: str) -> str | None:
        if context != "summary":
            return None
        try:
            summary = await asyncio.wait_for(
                summarize(
                    self._caller(), self.history, self.config.name, self.config.summary.max_tokens
                ),
                SUMMARY_TIMEOUT_S,
            )
        except Exception as exc:  # the transfer goes on, without the note
            self.log.warning("no summary for the transfer: %s", exc)
            return None
        return f"A colleague ({self.config.name}) handed this conversation to you. What happened so far: {summary}"

    def _entered_after_transfer(self, context: str) -> Callable[[ConfiguredAgent], Awaitable[None]]:
        async def entered(agent: ConfiguredAgent) -> None:
            await self._entered(agent)
            try:
                if context == "none" and agent.config.greeting:
                    self.session.say(agent.config.greeting, allow_interruptions=False)
                else:
                    self.session.generate_reply()
            except RuntimeError:  # the session is closing
                pass

        return entered

    async def escalate(
        self, reason: str, then: Literal["continue", "hold", "end"], message: str | None
    ) -> str:
        """Marks the session escalated (the record's `escalations`, an `agent-escalation` to
        the room for the frontend or a backend to page a human), says `message` if given,
        then: `continue` (the agent goes on), `hold` (the agent says so and stops answering:
        messages are still recorded, nothing replies until the session ends; a human joins
        through the frontend's own means) or `end` (the session ends, `end_reason: escalated`)."""
        at = _now()
        escalation = {"agent_id": self.config.agent_id, "reason": reason, "then": then, "at": at}
        self.escalations.append(escalation)
        self.writer.submit(Record(SESSIONS, self.session_id, {"escalations": self.escalations}))
        self._record_event("session.escalated", at, {"reason": reason, "then": then})
        number = len(self.escalations) - 1
        data = escalated_data(session_id=self.session_id, escalation=escalation)
        self._emit(EventType.SESSION_ESCALATED, f"escalated:{number}", data)
        await self._publish(
            ESCALATION_TOPIC,
            {"session_id": self.session_id, **escalation, "at": at.isoformat()},
        )
        self.log.info("escalated to a human (%s): %s", then, reason)
        if then == "end":
            if self.end_reason is None:
                self.end_reason, self.end_detail = ESCALATED, reason
                self._in_background(
                    self._close_after_this_reply(message), "switchboard.escalation_end"
                )
            return "A human colleague was notified and the session ends now: add nothing more."
        if then == "hold":
            self.agent.holding = True
            with contextlib.suppress(RuntimeError):
                self.session.say(message or HOLD_MESSAGE, allow_interruptions=False)
            return "A human colleague was notified; the user was told to hold on."
        if message:
            with contextlib.suppress(RuntimeError):
                self.session.say(message, allow_interruptions=False)
        return "A human colleague was notified. Tell the user, then keep helping them meanwhile."

    async def _close_after_this_reply(self, goodbye: str | None) -> None:
        """Wait until the reply the tool is part of has been said (with every step after its
        tools), then the goodbye, then close the session (its end runs as usual)."""
        try:
            current = self.session.current_speech
            if current is not None:
                await current.wait_for_playout()
            if goodbye:
                await self.session.say(goodbye, allow_interruptions=False).wait_for_playout()
        except RuntimeError:  # the session is already closing
            pass
        finally:
            self.session.shutdown(drain=True)

    def _in_background(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        if not self.room.isconnected():
            return
        try:
            await self.room.local_participant.publish_data(
                json.dumps(payload, default=str), reliable=True, topic=topic
            )
        except Exception as exc:  # a dropped publish must not break the conversation
            self.log.warning("publishing on %s failed: %s", topic, exc)
