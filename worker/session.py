"""AgentConfig -> livekit Agent (+ its models) and the AgentSession / room options around it.

The models live on the Agent rather than the session, so handing a conversation to another
agent type (`session.update_agent`) swaps the prompt, LLM, STT and TTS together.
"""

from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import Agent, AgentSession, ModelSettings, StopResponse, llm, room_io, vad
from livekit.agents.types import APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.room_io.types import TextInputCallback
from livekit.plugins import silero

from agent_configs.models import AgentConfig, Modality, VADSpec
from worker.providers import ChatEndpoint, build_llm, build_stt, build_tts, chat_endpoints
from worker.settings import WorkerSettings
from worker.turns import Message

DEFAULT_VAD = VADSpec()


@dataclass
class AgentModels:
    endpoints: list[ChatEndpoint]
    llm: llm.LLM
    stt: Any | None
    tts: Any | None
    vad: vad.VAD | None


def is_voice(config: AgentConfig) -> bool:
    return Modality.VOICE in config.modalities


def for_frontend(config: AgentConfig, requested_modality: object) -> AgentConfig:
    """A chat-only frontend (`"modality": "text"` in its metadata) gets a text session of a
    voice-capable type: no STT, TTS or VAD to pay for, replies as text right away."""
    if requested_modality == Modality.TEXT and Modality.TEXT in config.modalities:
        return config.model_copy(update={"modalities": [Modality.TEXT]})
    return config


def load_vad(spec: VADSpec) -> vad.VAD:
    return silero.VAD.load(
        min_speech_duration=spec.min_speech_duration_s,
        min_silence_duration=spec.min_silence_duration_s,
        activation_threshold=spec.activation_threshold,
    )


def build_models(config: AgentConfig, settings: WorkerSettings, prewarmed_vad: vad.VAD | None) -> AgentModels:
    """Raises ProviderError (naming the field) when a provider or its key is missing."""
    endpoints = chat_endpoints(config.llm, settings)
    voice = is_voice(config)
    vad_spec = config.vad or DEFAULT_VAD
    chosen_vad = None
    if voice:
        chosen_vad = prewarmed_vad if (prewarmed_vad and vad_spec == DEFAULT_VAD) else load_vad(vad_spec)
    return AgentModels(
        endpoints=endpoints,
        llm=build_llm(endpoints),
        stt=build_stt(config.stt, settings) if voice and config.stt else None,
        tts=build_tts(config.tts, settings) if voice and config.tts else None,
        vad=chosen_vad,
    )


def chat_context_from(messages: list[Message]) -> llm.ChatContext:
    context = llm.ChatContext.empty()
    for message in messages:
        context.add_message(role=message.role, content=message.text)
    return context


HandoffCheck = Callable[["ConfiguredAgent", str], Awaitable["ConfiguredAgent | None"]]
"""Asked with each user message before the agent replies; returns the agent to hand off to."""


class ConfiguredAgent(Agent):
    """One agent type in a room: its instructions and models, and its context window."""

    def __init__(
        self,
        config: AgentConfig,
        models: AgentModels,
        remembered: list[Message],
        *,
        handoff_check: HandoffCheck | None = None,
        pending_user_input: str | None = None,
    ) -> None:
        super().__init__(
            instructions=config.instructions,
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

    async def on_enter(self) -> None:
        """After a hand-off, answer the message that caused it."""
        if self.pending_user_input is not None:
            self.session.generate_reply(user_input=self.pending_user_input)
            self.pending_user_input = None

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage) -> None:
        """Hand off before replying, so the user's message is answered by the right type."""
        if self.handoff_check is None:
            return
        text = new_message.text_content or ""
        target = await self.handoff_check(self, text)
        if target is not None:
            target.pending_user_input = text
            self.session.update_agent(target)
            raise StopResponse()

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str]:
        """Send at most `max_context_messages` items (the instructions are always kept)."""
        window = chat_ctx.copy()
        window.truncate(max_items=self.config.max_context_messages)
        async for chunk in Agent.default.llm_node(self, window, tools, model_settings):
            yield chunk


LOCAL_LLM_CONNECT = APIConnectOptions(timeout=60.0, max_retry=1)
"""A local model on shared CPUs queues requests: livekit's default (10 s, 3 retries) timed
queued replies out and re-queued them at the back until the reply was dropped."""


def new_session(config: AgentConfig, models: AgentModels) -> AgentSession:
    """`user_away_timeout` drives the idle timeout: the worker says goodbye when it fires.

    Voice turns end on silero VAD silence (no turn-detector model to download); chat-only
    sessions have no turn detection at all, each `lk.chat` message is a turn.
    """
    detection = "vad" if is_voice(config) else "manual"
    options: dict[str, Any] = {}
    if models.endpoints[0].provider == "local":
        options["conn_options"] = SessionConnectOptions(llm_conn_options=LOCAL_LLM_CONNECT)
    return AgentSession(
        user_away_timeout=config.idle_timeout_s, turn_handling={"turn_detection": detection}, **options
    )


def room_options(
    config: AgentConfig,
    participant_identity: str | None,
    text_input_cb: TextInputCallback | None = None,
) -> room_io.RoomOptions:
    """Text always flows (`lk.chat` in, `lk.transcription` out); audio only for voice types."""
    voice = is_voice(config)
    options: dict[str, Any] = {"audio_input": voice, "audio_output": voice, "close_on_disconnect": True}
    if text_input_cb is not None:
        options["text_input"] = room_io.TextInputOptions(text_input_cb=text_input_cb)
    if participant_identity:
        options["participant_identity"] = participant_identity
    return room_io.RoomOptions(**options)
