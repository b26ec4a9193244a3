"""One conversation in one room, from the greeting to the summary: the session's pipeline.

Listens to the AgentSession, keeps the (bounded) transcript, and makes each turn one object
(`Turn`, worker/turn.py): the user's message, the tool calls that led to the reply (drained
from the session's ToolCallLog when the reply arrives) and the reply with its fields and its
latency waterfall. A generation that called tools and also said something ("let me look that
up") is kept in the transcript, and the turn waits for the reply that follows the tools'
results. Each turn's fields are filled in order, off the conversation's critical path, and the
finished turn goes to the sinks (worker/sinks/: records, room topics, CloudEvents, metrics),
which also get the session's start and end. This module writes nothing itself.

Hand-offs and transfers (worker/handoffs.py), escalations (worker/escalation.py) and the
summary (worker/summary.py) live in their own files; this class is what the built-in tools act
on (`SessionControls`, worker/tools/) and passes their calls on.

A user message is cut to `max_user_message_chars` as it arrives (the turn record says so),
and the transcript is bounded by `max_transcript_chars` (worker/transcript.py).

Nothing said is lost when the worker dies (kill -9, node loss) beyond a short grace: each turn
is stored with its fields, or `replied` when they are slower than the grace, and the session
record's transcript is rewritten as it grows, so the stale-session sweep's `aborted` record
keeps it (worker/sinks/records.py).

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
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from livekit import rtc
from livekit.agents import AgentSession, ConversationItemAddedEvent, llm
from livekit.agents.metrics import LLMMetrics, TTSMetrics
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import CloseEvent, SessionUsageUpdatedEvent, UserStateChangedEvent
from livekit.agents.voice.room_io import TextInputEvent

from agent_configs.egress import EgressPolicy
from agent_configs.models import AgentConfig
from worker import metrics
from worker.cost import SessionCost
from worker.escalation import HOLD_MESSAGE, Escalations, close_after_this_reply
from worker.handoffs import Handoffs, TransferRefused
from worker.host import AgentFactory, HandoffFinder, SlotMover, TargetLoader
from worker.latency import LatencyMarks, SpeechMarks, mark_received, turn_start
from worker.outputs import SessionOutputs
from worker.records import RecordWriter
from worker.session import TRUNCATED_FROM, ConfiguredAgent, ReplyFailure, speaks, user_message
from worker.sinks import Sinks
from worker.summary import session_summary
from worker.tools import ToolCallLog, ToolContext, build_tools
from worker.transcript import Transcript
from worker.turn import SessionEnd, SessionStart, Turn, now
from worker.turns import SUMMARY_TOPIC, Message, StructuredCaller, TurnFiller, Usage

__all__ = ["HOLD_MESSAGE", "Conversation", "TransferRefused"]

logger = logging.getLogger("switchboard.conversation")

GOODBYE = "It looks like you've stepped away, so I'll end our conversation here. Goodbye!"
AGENT_ENDED = "agent_ended"
END_TOPIC = "switchboard.end"
"""A data packet from the user on this topic ends the session (payload ignored, e.g. `{}`)."""
USER_ENDED = "user_ended"
FINISH_TURNS_TIMEOUT_S = 30.0
BEFORE_ORIGIN_S = 1.0
"""An LLM or TTS request that began this long before a turn's origin is not the turn's (a
transfer's own reply, the greeting); within it, livekit's clock and ours may disagree."""


@dataclass
class _Opening:
    """A user message waiting for its reply: the turn it opens."""

    text: str
    cut_from: int | None
    latency: LatencyMarks
    speech: SpeechMarks | None


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
    transcript: Transcript = field(default_factory=Transcript)
    usage: Usage = field(default_factory=Usage)
    cost: SessionCost = field(default_factory=SessionCost)
    end_reason: str | None = None
    end_detail: str | None = None
    """Why the agent ended the session (`end_session`'s reason), with `end_reason: agent_ended`."""
    _opening: _Opening | None = None
    _turns: asyncio.Queue[Turn] = field(default_factory=asyncio.Queue)
    _turn_task: asyncio.Task[None] | None = None
    _usage_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _callers: dict[str, StructuredCaller] = field(default_factory=dict)
    _llm_requests: list[LLMMetrics] = field(default_factory=list)
    _tts_requests: list[TTSMetrics] = field(default_factory=list)
    _watched: set[int] = field(default_factory=set)
    """The ids of the model objects whose metrics this conversation listens to."""
    _summary: str | None = None
    _concluded: bool = False
    _started_at: datetime | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.outputs = SessionOutputs(
            self.session_id, self.room, self.writer, self.agent.config.agent_id
        )
        self.sinks = Sinks(self.outputs)
        self.handoffs = Handoffs(self)
        self.escalations = Escalations(self)

    @property
    def config(self) -> AgentConfig:
        return self.agent.config

    @property
    def history(self) -> list[Message]:
        return self.transcript.messages

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
        self.agent.on_entered = self.entered
        self._watch_models(self.agent)
        if self.find_handoff is not None and self.routing.get("strategy") == "default":
            self.agent.handoff_check = self.handoffs.on_intent

    async def equip(self, agent: ConfiguredAgent) -> None:
        """Give `agent` its config's tools, bound to this session (before it becomes active).
        A tool that cannot be built (a plugin not installed, say) leaves the agent without
        tools rather than the room without an agent; the log says why."""
        self._watch_models(agent)
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

    def _watch_models(self, agent: ConfiguredAgent) -> None:
        """livekit's per-request metrics of the agent's own models: the waterfall's `llm` and
        `tts` stages and the session's cost. Heard on the models themselves (livekit's
        session-level `metrics_collected` is deprecated in 1.8 and logs so for each listener):
        a wrapped non-streaming STT or TTS emits its metrics on itself too."""
        for model in (agent.models.llm, agent.models.stt, agent.models.tts):
            if model is not None and id(model) not in self._watched:
                self._watched.add(id(model))
                model.on("metrics_collected", self._on_model_metrics)

    async def _say_while_waiting(self, text: str) -> None:
        """A tool's `waiting_message`: said at once (livekit lets a new speech start while a
        tool runs, the reply's generation being done), not added to the model's context."""
        with contextlib.suppress(RuntimeError):  # the session is closing
            self.session.say(text, allow_interruptions=False, add_to_chat_ctx=False)

    async def entered(self, agent: ConfiguredAgent) -> None:
        """livekit made `agent` the active one: from now on the conversation's turns are its.
        Switching here, not when a transfer is decided, keeps the old agent's last reply (its
        answer to the transfer tool) on the old agent's turn."""
        self.agent = agent
        self.outputs.agent_id = agent.config.agent_id

    def record_start(self, started_at: datetime, extra: dict[str, Any]) -> None:
        self._started_at = started_at
        self.sinks.session_started(
            SessionStart(
                self.session_id,
                self.room.name,
                self.config,
                self.routing,
                self.user_id,
                started_at,
                extra,
            )
        )

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
        self._summary = await session_summary(self.caller(), self.transcript, self.config)
        if self._summary and self.room.isconnected() and self.room.remote_participants:
            payload = {
                "session_id": self.session_id,
                "agent_id": self.config.agent_id,
                "summary": self._summary,
            }
            await self.outputs.publish(SUMMARY_TOPIC, payload)

    async def finish(self, shutdown_reason: str) -> None:
        """Runs once at job shutdown (the room is gone by then): the session's end to the sinks."""
        reason = self.end_reason or shutdown_reason or "shutdown"
        await self.conclude()  # a no-op when on_session_end ran it, as it normally does
        self.sinks.session_ended(
            SessionEnd(
                session_id=self.session_id,
                room=self.room.name,
                config=self.config,
                routing=self.routing,
                user_id=self.user_id,
                started_at=self._started_at,
                ended_at=now(),
                reason=reason,
                detail=self.end_detail,
                summary=self._summary,
                transcript=self.transcript,
                handoffs=self.handoffs.done,
                escalations=self.escalations.done,
                usage=self.usage,
                cost=self.cost,
            )
        )
        self.log.info("session ended (%s), %d turns", reason, self.transcript.turn_count)

    def caller(self, agent: ConfiguredAgent | None = None) -> StructuredCaller:
        """One caller per agent type in this session (a hand-off brings its own models), reused
        by every structured turn and the summary; its HTTP clients are the process's shared ones."""
        agent = agent or self.agent
        agent_id = agent.config.agent_id
        if agent_id not in self._callers:
            self._callers[agent_id] = StructuredCaller(
                agent.models.endpoints, usage=self.usage, on_request=self.cost.add_llm
            )
        return self._callers[agent_id]

    async def _drain_turns(self) -> None:
        try:
            await asyncio.wait_for(self._turns.join(), FINISH_TURNS_TIMEOUT_S)
        except TimeoutError:
            self.log.warning("%d structured turns unfinished at shutdown", self._turns.qsize())
        if self._turn_task is not None:
            self._turn_task.cancel()

    # -- what the user sends -----------------------------------------------------------

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

    # -- the session's events ----------------------------------------------------------

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        text = (item.text_content or "").strip()
        if not text:
            if (
                item.role == "assistant"
                and self._opening is not None
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
            self.transcript.remember(Message(item.role, text), self.config.max_transcript_chars)
        if item.role == "user":
            self._opening = _Opening(
                text,
                item.extra.get(TRUNCATED_FROM),
                LatencyMarks(*turn_start(item)),
                SpeechMarks.of(item.metrics),
            )
            self.transcript.awaiting_reply = True
        elif self._opening is not None and self.agent.generation_called_tools:
            pass  # words said before tools run: the turn's reply is the one after their results
        else:
            failure, self.agent.failed_reply = self.agent.failed_reply, None
            if self._opening is not None:
                turn = self._close_turn(item, text, failure)
                self.transcript.awaiting_reply = False
                self.sinks.turn_replied(turn)
                self._turns.put_nowait(turn)  # its fields, in the background
        self.sinks.transcript_changed(self.transcript)

    def _close_turn(self, item: llm.ChatMessage, reply: str, failure: ReplyFailure | None) -> Turn:
        """The reply has ended: the turn as one object, with every mark taken so far."""
        opening, self._opening = self._opening, None
        assert opening is not None
        agent = self.agent
        latency = opening.latency
        latency.first_text_at, agent.first_text_at = agent.first_text_at, None
        latency.reply_ended_at = time.time()
        item_metrics = item.metrics or {}
        if speaks(self.config):  # without speech (text, voice in) livekit's mark is the first text
            latency.first_audio_at = item_metrics.get("started_speaking_at")
        streamed, agent.streamed_turn = agent.streamed_turn, None
        turn = Turn(
            index=self.transcript.turn_count,
            session_id=self.session_id,
            user_id=self.user_id,
            agent=agent,
            history=list(self.transcript.messages),
            user_text=opening.text,
            user_text_cut_from=opening.cut_from,
            reply=reply,
            latency=latency,
            tool_calls=self.tool_log.drain(),
            streamed=streamed if failure is None else None,
            failure=failure,
            speech=opening.speech,
            llm_node_ttft=item_metrics.get("llm_node_ttft"),
        )
        self.transcript.turn_count += 1
        self.cost.tool_calls += len(turn.tool_calls)
        return turn

    def _on_model_metrics(self, event: Any) -> None:
        self.cost.collect(event)
        if isinstance(event, LLMMetrics):
            self._llm_requests.append(event)
        elif isinstance(event, TTSMetrics):
            self._tts_requests.append(event)

    def _take_requests(self, turn: Turn) -> None:
        """The LLM and TTS requests that began by the turn's reply's end are this turn's (or,
        begun well before its origin, nobody's). Taken once the fields are in: the request
        that wrote the reply and its fields reports when its stream closes, after the reply."""
        latency = turn.latency
        until = latency.reply_ended_at or time.time()
        since = latency.started_at - BEFORE_ORIGIN_S

        def take(requests: list[Any]) -> list[Any]:
            mine = [r for r in requests if r.timestamp - r.duration <= until]
            requests[:] = [r for r in requests if r.timestamp - r.duration > until]
            return [r for r in mine if r.timestamp - r.duration >= since]

        turn.llm_requests = take(self._llm_requests)
        turn.tts_requests = take(self._tts_requests)

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

    # -- the turn's fields, then the sinks ---------------------------------------------

    async def _fill_turns_in_order(self) -> None:
        while True:
            turn = await self._turns.get()
            try:
                await self._finish_turn(turn)
            except Exception:  # a broken turn must never end the conversation
                self.log.exception("structured turn %d failed", turn.index)
            finally:
                self._turns.task_done()

    async def _finish_turn(self, turn: Turn) -> None:
        failure = turn.failure
        if failure is not None:  # no model answered: no fields to fill
            turn.status, turn.error, turn.error_kind = "failed", failure.error, failure.kind
            turn.attempts = failure.attempts
        else:
            config = turn.config
            streamed = await turn.streamed if turn.streamed is not None else None
            filled = await TurnFiller(
                self.caller(turn.agent), config.turn_schema, config.name
            ).fill(turn.history, turn.reply, streamed)
            turn.latency.fields_done()
            turn.fields, turn.status = filled.fields, filled.status
            turn.error, turn.attempts = filled.error, filled.attempts
            turn.filled_at = now()
        self._take_requests(turn)
        await self.sinks.turn_finished(turn)

    # -- what the built-in tools do (SessionControls, worker/tools/) ----------------------

    async def end_session(self, reason: str, goodbye: str | None) -> str:
        """The model ends the session: its reply to this tool's result is said, then the
        configured `goodbye` (if any), then the session closes as a user's `switchboard.end`
        does (summary published, `end_reason: agent_ended`, `end_detail`: the reason)."""
        if self.end_reason is not None:
            return "The session is already ending."
        self.end_reason, self.end_detail = AGENT_ENDED, reason
        self.log.info("the agent ends the session: %s", reason)
        self.in_background(close_after_this_reply(self.session, goodbye), "switchboard.agent_end")
        if goodbye:
            return "The session ends now and the goodbye is said for you: add nothing more."
        return "The session ends after this reply: say goodbye to the user in one short sentence."

    async def transfer(
        self, target: str, reason: str, context: Literal["full", "summary", "none"]
    ) -> str:
        return await self.handoffs.transfer(target, reason, context)

    async def escalate(
        self, reason: str, then: Literal["continue", "hold", "end"], message: str | None
    ) -> str:
        return await self.escalations.escalate(reason, then, message)

    def in_background(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
