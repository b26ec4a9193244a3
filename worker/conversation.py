"""One conversation in one room, from the greeting to the summary.

Listens to the AgentSession, keeps the transcript, runs the structured-turn pipeline in order
(one turn at a time, off the conversation's critical path), hands the session to another agent
type when an intent matches, says goodbye on idle timeout, and at the end publishes the
summary and writes the session record. Every write goes through the buffered RecordWriter.

What it keeps is bounded by the agent type's config: a user message is cut to
`max_user_message_chars` as it arrives (the turn record says so), and the transcript keeps the
newest messages within `max_transcript_chars`, counting the ones it let go, so a session
that runs for days still writes a record far below MongoDB's 16 MB document limit.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, ConversationItemAddedEvent, llm
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import CloseEvent, SessionUsageUpdatedEvent, UserStateChangedEvent
from livekit.agents.voice.room_io import TextInputEvent

from agent_configs.models import AgentConfig
from worker import metrics
from worker.records import EVENTS, SESSIONS, TURNS, Record, RecordWriter
from worker.session import TRUNCATED_FROM, ConfiguredAgent, user_message
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
FINISH_TURNS_TIMEOUT_S = 30.0
SUMMARY_TIMEOUT_S = 30.0

HandoffFinder = Callable[[str, str], Awaitable[tuple[AgentConfig, dict[str, Any]] | None]]
"""`await find(current_agent_id, user_text)` -> (target config, match details) or None."""

AgentFactory = Callable[[AgentConfig, list[Message]], Awaitable[ConfiguredAgent]]
"""`await build(config, history)` -> a ready agent of that type that continues `history`."""

SlotMover = Callable[[AgentConfig], Awaitable[bool]]
"""`await move(target)` -> whether the session now holds a capacity slot of the target type
(False: the target is at `max_concurrent_sessions`, the session keeps its slot)."""


@dataclass(frozen=True)
class _PendingTurn:
    index: int
    history: list[Message]
    reply: str
    user_text: str | None
    user_text_cut_from: int | None
    """The user message's length before it was cut to `max_user_message_chars`, if it was."""
    streamed: asyncio.Future[StreamedTurn] | None


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
    history: list[Message] = field(default_factory=list)
    """The newest messages within `max_transcript_chars` (see `_remember`)."""
    transcript_dropped: int = 0
    usage: Usage = field(default_factory=Usage)
    end_reason: str | None = None
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    _turn_index: int = 0
    _history_chars: int = 0
    _awaiting_reply_to: str | None = None
    _awaiting_cut_from: int | None = None
    _turns: asyncio.Queue[_PendingTurn] = field(default_factory=asyncio.Queue)
    _turn_task: asyncio.Task[None] | None = None
    _usage_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _callers: dict[str, StructuredCaller] = field(default_factory=dict)

    @property
    def config(self) -> AgentConfig:
        return self.agent.config

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(
            logger, {"session_id": self.session_id, "room": self.room.name, "agent_id": self.config.agent_id}
        )

    # -- lifecycle ---------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to the session's events; call before `session.start`."""
        self.session.on("conversation_item_added", self._on_item_added)
        self.session.on("user_state_changed", self._on_user_state)
        self.session.on("session_usage_updated", self._on_usage)
        self.session.on("close", self._on_close)
        self._turn_task = asyncio.create_task(self._fill_turns_in_order(), name="switchboard.turns")
        if self.find_handoff is not None and self.routing.get("strategy") == "default":
            self.agent.handoff_check = self._maybe_hand_off

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

    async def finish(self, shutdown_reason: str) -> None:
        """Runs once at job shutdown: drain turns, summarize, publish, record, flush."""
        reason = self.end_reason or shutdown_reason or "shutdown"
        await self._drain_turns()
        summary = await self._summary()
        if summary and self.room.isconnected() and self.room.remote_participants:
            payload = {"session_id": self.session_id, "agent_id": self.config.agent_id, "summary": summary}
            await self._publish(SUMMARY_TOPIC, payload)
        self.writer.submit(
            Record(
                SESSIONS,
                self.session_id,
                {
                    "status": "ended",
                    "ended_at": _now(),
                    "end_reason": reason,
                    "agent_id": self.config.agent_id,
                    "transcript": [{"role": m.role, "text": m.text} for m in self.history],
                    "transcript_dropped": self.transcript_dropped,
                    "turn_count": self._turn_index,
                    "summary": summary,
                    "handoffs": self.handoffs,
                    "usage": {
                        "prompt_tokens": self.usage.prompt_tokens,
                        "completion_tokens": self.usage.completion_tokens,
                    },
                },
            )
        )
        self._record_event("session.ended", _now(), {"end_reason": reason, "turns": self._turn_index})
        self.log.info("session ended (%s), %d turns", reason, self._turn_index)

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
            return
        self._remember(Message(item.role, text))  # type: ignore[arg-type]
        ttft = (item.metrics or {}).get("llm_node_ttft")
        if item.role == "assistant" and ttft is not None:
            metrics.LLM_TTFT.labels(self.agent.models.endpoints[0].model).observe(max(ttft, 0.0))
        if item.role == "user":
            self._awaiting_reply_to = text
            self._awaiting_cut_from = item.extra.get(TRUNCATED_FROM)
        elif self._awaiting_reply_to is not None:
            streamed, self.agent.streamed_turn = self.agent.streamed_turn, None
            self._turns.put_nowait(
                _PendingTurn(
                    self._turn_index, list(self.history), text, self._awaiting_reply_to, self._awaiting_cut_from, streamed
                )
            )
            self._turn_index += 1
            self._awaiting_reply_to = None
            self._awaiting_cut_from = None

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
        config = self.config
        caller = self._caller()
        index = turn.index
        streamed = await turn.streamed if turn.streamed is not None else None
        filled = await TurnFiller(caller, config.turn_schema, config.name).fill(turn.history, turn.reply, streamed)
        if filled.status == "failed":
            metrics.TURN_EXTRACTION_FAILURES.labels(config.agent_id).inc()
        payload = {
            "session_id": self.session_id,
            "agent_id": config.agent_id,
            "turn_index": index,
            "fields": filled.fields,
        }
        if filled.status == "failed":
            payload["status"] = "failed"
        truncated = turn.user_text_cut_from is not None
        if truncated:  # the frontend can tell its user that only the start was read
            payload["user_text_truncated"] = True
        await self._publish(TURN_TOPIC, payload)
        self.writer.submit(
            Record(
                TURNS,
                f"{self.session_id}:{index}",
                {
                    "session_id": self.session_id,
                    "agent_id": config.agent_id,
                    "schema_id": config.turn_schema.schema_id,
                    "user_id": self.user_id,
                    "turn_index": index,
                    "user_text": turn.user_text,
                    "user_text_truncated": truncated,
                    "user_text_original_chars": turn.user_text_cut_from,
                    "fields": filled.fields,
                    "status": filled.status,
                    "error": filled.error,
                    "attempts": filled.attempts,
                    "created_at": _now(),
                },
            )
        )

    def _caller(self) -> StructuredCaller:
        """One caller per agent type in this session (a hand-off brings its own models), reused
        by every structured turn and the summary; its HTTP clients are the process's shared ones."""
        agent_id = self.config.agent_id
        if agent_id not in self._callers:
            self._callers[agent_id] = StructuredCaller(self.agent.models.endpoints, usage=self.usage)
        return self._callers[agent_id]

    async def _drain_turns(self) -> None:
        try:
            await asyncio.wait_for(self._turns.join(), FINISH_TURNS_TIMEOUT_S)
        except TimeoutError:
            self.log.warning("%d structured turns unfinished at shutdown", self._turns.qsize())
        if self._turn_task is not None:
            self._turn_task.cancel()

    async def _summary(self) -> str | None:
        if not self.config.summary.enabled:
            return None
        caller = self._caller()
        try:
            return await asyncio.wait_for(summarize(caller, self.history, self.config.name), SUMMARY_TIMEOUT_S)
        except Exception as exc:  # the record is written even without a summary
            self.log.warning("summary failed: %s", exc)
            return None

    # -- hand-off ----------------------------------------------------------------------

    async def on_text_input(self, session: AgentSession, event: TextInputEvent) -> None:
        """`lk.chat` messages: cut to `max_user_message_chars`, hand off first when an intent
        matches, then answer."""
        cap = self.config.max_user_message_chars
        check = self.agent.handoff_check
        if check is not None:
            target = await check(self.agent, event.text[:cap])
            if target is not None:
                target.pending_user_input = user_message(event.text, cap)
                session.update_agent(target)
                return
        with contextlib.suppress(RuntimeError):  # the greeting is not interruptible: reply after it
            await session.interrupt()
        # made now, not before the awaits: livekit places a message by its `created_at`
        session.generate_reply(user_input=user_message(event.text, cap))

    async def _maybe_hand_off(self, current: ConfiguredAgent, user_text: str) -> ConfiguredAgent | None:
        """Only the first user message of a session routed by `default` is matched.

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
            self.log.warning("no hand-off to %s on intent %s: %s", target_config.agent_id, intent, exc)
            return None
        if self.move_slot is not None and not await self.move_slot(target_config):
            self.log.info(
                "no hand-off to %s on intent %s: full (max_concurrent_sessions=%s)",
                target_config.agent_id,
                intent,
                target_config.max_concurrent_sessions,
            )
            return None
        handoff = {
            "from_agent_id": current.config.agent_id,
            "to_agent_id": target_config.agent_id,
            "strategy": "intent",
            "match": match,
            "at": _now(),
        }
        self.handoffs.append(handoff)
        self.agent = target
        await self.room.local_participant.set_attributes(
            {"switchboard.agent_id": target_config.agent_id, "switchboard.strategy": "intent"}
        )
        await self._publish(HANDOFF_TOPIC, {"session_id": self.session_id, **handoff, "at": handoff["at"].isoformat()})
        self.writer.submit(
            Record(SESSIONS, self.session_id, {"agent_id": target_config.agent_id, "handoffs": self.handoffs})
        )
        metrics.ROUTING_DECISIONS.labels(target_config.agent_id, "intent").inc()
        self.log.info("handed off to %s on intent %s", target_config.agent_id, match.get("intent"))
        return target

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        if not self.room.isconnected():
            return
        try:
            await self.room.local_participant.publish_data(
                json.dumps(payload, default=str), reliable=True, topic=topic
            )
        except Exception as exc:  # a dropped publish must not break the conversation
            self.log.warning("publishing on %s failed: %s", topic, exc)
