"""AgentConfig -> livekit Agent (+ its models) and the AgentSession / room options around it.

The models live on the Agent rather than the session, so handing a conversation to another
agent type (`session.update_agent`) swaps the prompt, LLM, STT and TTS together.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import openai
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ModelSettings,
    StopResponse,
    llm,
    room_io,
    vad,
)
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.room_io.types import TextInputCallback
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import silero

from agent_configs.models import AgentConfig, Modality, TurnFill, VADSpec
from worker import turn_stream
from worker.providers import ChatEndpoint, build_llm, build_stt, build_tts, chat_endpoints
from worker.settings import WorkerSettings
from worker.turn_stream import StreamedReply
from worker.turns import Message, StreamedTurn

DEFAULT_VAD = VADSpec()
RETRY_PAUSE_S = 1.0
"""Between two failed reply attempts (each already retried once inside livekit)."""

logger = logging.getLogger("switchboard.session")

ReplyFailureKind = Literal["llm_unavailable", "llm_timeout", "llm_error", "empty_reply"]


@dataclass(frozen=True)
class ReplyFailure:
    """No configured model answered a user message within `llm_unavailable.after_s`."""

    kind: ReplyFailureKind
    """`llm_unavailable`: no model could be reached (connection refused, every fallback
    down); `llm_timeout`: a model took too long; `llm_error`: a model answered with an error;
    `empty_reply`: the model answered, with nothing but whitespace."""
    error: str
    attempts: int
    waited_s: float


def failure_kind(error: BaseException) -> ReplyFailureKind:
    """From the most telling error in the chain: livekit wraps the provider's error in an
    `APIConnectionError("failed ... after N attempts")`, which alone says nothing."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, (APITimeoutError, openai.APITimeoutError, TimeoutError)) for e in chain):
        return "llm_timeout"
    if any(isinstance(e, (APIStatusError, openai.APIStatusError)) for e in chain):
        return "llm_error"
    if any(isinstance(e, (APIConnectionError, openai.APIConnectionError)) for e in chain):
        return "llm_unavailable"
    return "llm_error"


def _has_text(chunk: llm.ChatChunk | str) -> bool:
    if isinstance(chunk, str):
        return bool(chunk)
    return chunk.delta is not None and bool(chunk.delta.content)


def _has_tool_calls(chunk: llm.ChatChunk | str) -> bool:
    return not isinstance(chunk, str) and chunk.delta is not None and bool(chunk.delta.tool_calls)


def _has_output(chunk: llm.ChatChunk | str) -> bool:
    """Words or tool calls: once either left `llm_node`, a failed attempt is not retried
    (livekit may already be running the tools)."""
    return _has_text(chunk) or _has_tool_calls(chunk)


@dataclass
class AgentModels:
    endpoints: list[ChatEndpoint]
    """As configured: the structured-turn retries and the summary call them directly."""
    llm: llm.LLM
    """For the replies; with fields filled alongside the reply, its token cap has room for them."""
    fields_in_reply: bool
    """The turn's fields come with the reply, from one constrained call (`fields_in_reply`)."""
    stt: Any | None
    tts: Any | None
    vad: vad.VAD | None


def is_voice(config: AgentConfig) -> bool:
    return Modality.VOICE in config.modalities


def fields_with_reply(config: AgentConfig) -> bool:
    """A schema of `system_response` alone has nothing to fill: its replies stay plain text."""
    return config.turn_schema.fill == TurnFill.WITH_REPLY and len(config.turn_schema.fields) > 1


def fields_in_reply(config: AgentConfig, primary: ChatEndpoint) -> bool:
    """Whether the reply request is the constrained one that also writes the fields.

    Yes when the config fills its fields with the reply, unless it declares tools and its
    primary model's server cannot call tools under a JSON schema
    (`ChatEndpoint.supports_tools_with_schema`, False for llama.cpp): there the schema would
    keep the model from ever calling a tool, so replies are plain text (tools work) and the
    fields come from the extraction call after each reply, as with `fill: after_reply`."""
    if not fields_with_reply(config):
        return False
    return not config.tools or primary.supports_tools_with_schema


VOICE_IN = "voice_in"
"""A frontend's `"modality"` for voice in, text out: a Telegram voice note is published into
the room as the user's microphone and the answer is read, never heard."""


def for_frontend(config: AgentConfig, requested_modality: object) -> AgentConfig:
    """A chat-only frontend (`"modality": "text"` in its metadata) gets a text session of a
    voice-capable type: no STT, TTS or VAD to pay for, replies as text right away. A voice-in
    frontend (`"modality": "voice_in"`) keeps the type's STT and VAD but not its TTS: the
    replies go out as text only (`speaks` is False), with no speech synthesised for nobody."""
    if requested_modality == Modality.TEXT and Modality.TEXT in config.modalities:
        return config.model_copy(update={"modalities": [Modality.TEXT]})
    if requested_modality == VOICE_IN and Modality.VOICE in config.modalities:
        return config.model_copy(update={"tts": None})
    return config


def speaks(config: AgentConfig) -> bool:
    """Whether the replies are spoken: a voice type, unless a voice-in frontend dropped its TTS."""
    return is_voice(config) and config.tts is not None


def load_vad(spec: VADSpec) -> vad.VAD:
    return silero.VAD.load(
        min_speech_duration=spec.min_speech_duration_s,
        min_silence_duration=spec.min_silence_duration_s,
        activation_threshold=spec.activation_threshold,
    )


async def voice_activity_detector(config: AgentConfig, prewarmed: vad.VAD | None) -> vad.VAD | None:
    """Voice sessions only. Without a prewarmed VAD (`WORKER_PREWARM_VAD` off) it is loaded
    here, in a thread (about 50 ms), while the room connection is still being set up: a text
    session never pays its ~20 MB."""
    if not is_voice(config):
        return None
    spec = config.vad or DEFAULT_VAD
    if prewarmed is not None and spec == DEFAULT_VAD:
        return prewarmed
    return await asyncio.to_thread(load_vad, spec)


async def build_models(
    config: AgentConfig, settings: WorkerSettings, prewarmed_vad: vad.VAD | None
) -> AgentModels:
    """Raises ProviderError (naming the field) when a provider or its key is missing."""
    endpoints = chat_endpoints(config.llm, settings)
    reply_endpoints = endpoints
    with_fields = fields_in_reply(config, endpoints[0])
    if with_fields:
        reply_endpoints = [
            replace(e, max_tokens=turn_stream.call_max_tokens(e.max_tokens, config.turn_schema))
            for e in endpoints
        ]
    voice = is_voice(config)
    chosen_vad = await voice_activity_detector(config, prewarmed_vad)
    return AgentModels(
        endpoints=endpoints,
        llm=build_llm(reply_endpoints),
        fields_in_reply=with_fields,
        stt=build_stt(config.stt, settings) if voice and config.stt else None,
        tts=build_tts(config.tts, settings) if voice and config.tts else None,
        vad=chosen_vad,
    )


def chat_context_from(messages: list[Message]) -> llm.ChatContext:
    context = llm.ChatContext.empty()
    for message in messages:
        context.add_message(role=message.role, content=message.text)
    return context


TRUNCATED_FROM = "switchboard.truncated_from_chars"
"""`ChatMessage.extra` key: the length of a user message that was cut to the cap."""


def user_message(text: str, max_chars: int) -> llm.ChatMessage:
    """A user's message as it enters the conversation: at most `max_chars` characters.

    Longer text is cut to the first `max_chars` characters (what a chat box with a length
    limit would have let through) and answered as cut; the message carries its original
    length in `extra[TRUNCATED_FROM]`, so the turn record can say it was truncated. Without
    the cap, one pasted 1 MB message went whole into every later LLM request and the session
    record.
    """
    if len(text) <= max_chars:
        return llm.ChatMessage(role="user", content=[text])
    return llm.ChatMessage(
        role="user", content=[text[:max_chars]], extra={TRUNCATED_FROM: len(text)}
    )


def cut_user_message(message: llm.ChatMessage, max_chars: int) -> None:
    """The same cap for a message livekit built (a transcribed voice turn), in place."""
    text = message.text_content or ""
    if len(text) > max_chars:
        message.content = [text[:max_chars]]
        message.extra[TRUNCATED_FROM] = len(text)


def _instructions(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and item.role in ("system", "developer")


def _characters(item: llm.ChatItem) -> int:
    if isinstance(item, llm.ChatMessage):
        return len(item.raw_text_content or "")
    if isinstance(item, llm.FunctionCall):
        return len(item.name) + len(item.arguments)
    if isinstance(item, llm.FunctionCallOutput):
        return len(item.output)
    return 0  # hand-off and config-update markers carry no text


def context_window(chat_ctx: llm.ChatContext, max_messages: int, max_chars: int) -> llm.ChatContext:
    """What a reply request sends: the newest items of the conversation that fit both
    `max_messages` and `max_chars`, and always the instructions.

    Older items are dropped whole (never cut mid-message), newest kept first, so the model
    always sees the message it answers and what led up to it. The instructions are not
    counted against `max_chars` (they have their own cap in the config, and without them the
    agent would not be the agent). The newest item is kept even if it alone is over the cap;
    a user message never is, since `max_context_chars >= max_user_message_chars`. livekit's
    `truncate` does the dropping, so a function call is never sent without its output.
    """
    window = chat_ctx.copy()
    window.truncate(max_items=max_messages)
    conversation = [item for item in window.items if not _instructions(item)]
    used = kept = 0
    for item in reversed(conversation):
        size = _characters(item)
        if kept and used + size > max_chars:
            break
        used += size
        kept += 1
    if kept < len(conversation):
        window.truncate(max_items=kept)
    return window


HandoffCheck = Callable[["ConfiguredAgent", str], Awaitable["ConfiguredAgent | None"]]
"""Asked with each user message before the agent replies; returns the agent to hand off to."""

EnteredHook = Callable[["ConfiguredAgent"], Awaitable[None]]
"""Called when livekit makes the agent the active one (worker/conversation.py sets it)."""


class ConfiguredAgent(Agent):
    """One agent type in a room: its instructions and models, and its context window."""

    def __init__(
        self,
        config: AgentConfig,
        models: AgentModels,
        remembered: list[Message],
        *,
        handoff_check: HandoffCheck | None = None,
        pending_user_input: llm.ChatMessage | None = None,
    ) -> None:
        with_fields = models.fields_in_reply
        super().__init__(
            instructions=turn_stream.instructions(config.instructions, config.turn_schema)
            if with_fields
            else config.instructions,
            chat_ctx=chat_context_from(remembered),
            llm=models.llm,
            stt=models.stt,
            tts=models.tts,
            vad=models.vad,
        )
        self.config = config
        self.models = models
        self.remembered_messages = len(remembered)
        self.handoff_check = handoff_check
        self.pending_user_input = pending_user_input
        self.on_entered: EnteredHook | None = None
        self.holding = False
        """Escalated with `then: hold`: the agent stops replying (messages are still recorded)."""
        self.generation_called_tools = False
        """The latest generation passed tool calls on: livekit runs them and asks again, so
        what it said (if anything) is not yet the turn's reply."""
        self.streamed_turn: asyncio.Future[StreamedTurn] | None = None
        """The latest reply with its fields, when they come with the reply; the conversation
        takes it. It resolves after the reply's words, once the fields are written too."""
        self.first_text_at: float | None = None
        """When the latest reply's first words left `llm_node` (wall clock): the turn's
        `first_text` latency mark (worker/latency.py); the conversation takes it."""
        self.failed_reply: ReplyFailure | None = None
        """Set when the latest "reply" is the `llm_unavailable` message; the conversation takes
        it and records the turn as failed."""
        self._reply_request: dict[str, Any] | None = None
        if with_fields:
            primary = models.endpoints[0]
            self._reply_request = primary.structured_options(
                turn_stream.response_format(
                    config.turn_schema, primary.max_tokens, bounded=primary.bounded_strings
                )
            )

    async def on_enter(self) -> None:
        """Tell the conversation this agent is now the one speaking, then, after an intent
        hand-off, answer the message that caused it. Stamped anew: livekit orders a chat
        context by `created_at`, and the message is older than this agent's instructions and
        history, so it would go first, before the system prompt (the local model then refused
        the request: "Failed to initialize samplers")."""
        if self.on_entered is not None:
            await self.on_entered(self)
        if self.pending_user_input is not None:
            message = self.pending_user_input.model_copy(update={"created_at": time.time()})
            self.session.generate_reply(user_input=message)
            self.pending_user_input = None

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """Cap the transcribed message (as typed ones are), then hand off before replying, so
        the user's message is answered by the right type."""
        cut_user_message(new_message, self.config.max_user_message_chars)
        if self.holding:
            raise StopResponse()
        if self.handoff_check is None:
            return
        target = await self.handoff_check(self, new_message.text_content or "")
        if target is not None:
            target.pending_user_input = new_message
            self.session.update_agent(target)
            raise StopResponse()

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str]:
        """Send the `context_window` of the conversation (`max_context_messages`,
        `max_context_chars`); retry a reply that failed before its first word until
        `llm_unavailable.after_s`, then answer with `llm_unavailable.message`.

        Each attempt goes through every configured model (the FallbackAdapter tries the
        fallbacks first). Measured with the LLM endpoint stopped (connection refused,
        tests/worker/test_faults.py): each attempt fails in ~0.1 s (livekit retries once), so
        the user had the message 3.1-3.2 s after sending with `after_s: 3`, three times in a
        row, and the session stayed open; the first message after the endpoint was back was
        answered 0.1 s after it was sent, nothing restarted. The message is the reply as far as livekit is concerned: it
        is spoken in a voice session and typed on `lk.transcription` in every session, and it
        stays in the transcript the user saw."""
        self.generation_called_tools = False
        if self.holding:
            return
        window = context_window(
            chat_ctx, self.config.max_context_messages, self.config.max_context_chars
        )
        policy = self.config.llm_unavailable
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        self.first_text_at = None
        attempts = 0
        while True:
            attempts += 1
            said_something = False
            try:
                async for chunk in self._reply(window, tools, model_settings):
                    said_something = said_something or _has_output(chunk)
                    if _has_tool_calls(chunk):
                        self.generation_called_tools = True
                    if self.first_text_at is None and _has_text(chunk):
                        self.first_text_at = time.time()
                    yield chunk
                return
            except Exception as exc:
                if said_something:  # cut off mid-reply: what was said stands, livekit ends the turn
                    raise
                error = exc
            waited = loop.time() - asked_at
            if waited < policy.after_s:
                logger.warning(
                    "reply attempt %d failed (%s), retrying: %s",
                    attempts,
                    failure_kind(error),
                    error,
                )
                await asyncio.sleep(min(RETRY_PAUSE_S, policy.after_s - waited))
                continue
            self.streamed_turn = None
            self.failed_reply = ReplyFailure(
                failure_kind(error), f"{type(error).__name__}: {error}", attempts, waited
            )
            logger.error(
                "no model answered after %d attempts in %.1fs (%s): %s",
                attempts,
                waited,
                self.failed_reply.kind,
                error,
            )
            self.first_text_at = time.time()
            yield policy.message
            return

    async def _reply(
        self, window: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str]:
        """One attempt. With fields filled alongside the reply, only the reply's words (and
        the tool calls, when the model calls tools instead of answering) are passed on as
        they stream."""
        if self._reply_request is None:
            async for chunk in Agent.default.llm_node(self, window, tools, model_settings):
                yield chunk  # type: ignore[misc]  # its FlushSentinels pass through as they are
            return
        reply = StreamedReply(
            self.models.llm.chat(
                chat_ctx=window,
                tools=tools,
                tool_choice=model_settings.tool_choice,
                conn_options=self.session.conn_options.llm_conn_options,
                extra_kwargs=self._reply_request,
            )
        )
        self.streamed_turn = reply.turn
        async for words in reply.words():
            yield words


DEFAULT_LLM_CONNECT = SessionConnectOptions().llm_conn_options

MODEL_FAILURES_BEFORE_CLOSING = 1_000_000
"""livekit closes a session after `max_unrecoverable_errors` (3) failed model calls in a row:
with the LLM server stopped for 31 s, a user who sent 4 messages lost the session. A failed
reply is handled by `ConfiguredAgent.llm_node` (the `llm_unavailable` message, a `failed`
turn), so the session stays open as long as the user is there; the same holds for a failing
STT or TTS (the user can still type, and read the replies)."""


def new_session(config: AgentConfig, models: AgentModels) -> AgentSession:
    """`user_away_timeout` drives the idle timeout: the worker says goodbye when it fires.

    Voice turns end on silero VAD silence (no turn-detector model to download); chat-only
    sessions have no turn detection at all, each `lk.chat` message is a turn.
    """
    detection: Literal["vad", "manual"] = "vad" if is_voice(config) else "manual"
    llm_options = models.endpoints[0].connect_options or DEFAULT_LLM_CONNECT
    return AgentSession(
        user_away_timeout=config.idle_timeout_s,
        turn_handling=TurnHandlingOptions(turn_detection=detection),
        conn_options=SessionConnectOptions(
            llm_conn_options=llm_options, max_unrecoverable_errors=MODEL_FAILURES_BEFORE_CLOSING
        ),
    )


def room_options(
    config: AgentConfig,
    participant_identity: str | None,
    text_input_cb: TextInputCallback | None = None,
) -> room_io.RoomOptions:
    """Text always flows (`lk.chat` in, `lk.transcription` out); audio in for voice types, audio
    out only when they speak (a voice-in session has no TTS: livekit's `say` refuses to run
    without one while audio output is on, so the greeting would fail)."""
    options: dict[str, Any] = {
        "audio_input": is_voice(config),
        "audio_output": speaks(config),
        "close_on_disconnect": True,
    }
    if text_input_cb is not None:
        options["text_input"] = room_io.TextInputOptions(text_input_cb=text_input_cb)
    if participant_identity:
        options["participant_identity"] = participant_identity
    return room_io.RoomOptions(**options)
