"""A bare livekit-agents worker: the baseline every Switchboard benchmark is compared with.

    LIVEKIT_URL=... LOCAL_LLM_URL=... AGENT_NAME=bare .venv/bin/python -m bench.bare_worker start

One AgentServer, one rtc_session entrypoint: connect, start a text-only AgentSession on the
same local LLM through the same OpenAI plugin (`livekit.plugins.openai.LLM`, `base_url` = the
local server), say a fixed greeting, answer `lk.chat`. No routing, no database, no config, no
structured turns, no records, no metrics: whatever Switchboard costs beyond this is our work.

The server options that shape load and start-up are Switchboard's (load = sessions in use /
WORKER_MAX_SESSIONS, load_threshold 1.0, same shutdown timeout, production defaults for the
idle process pool); the session ends the job when it closes, as Switchboard's does, so both
free their process at the same moment.

The bench passes the instructions, greeting and sampling of the seeded support agent type in
BARE_* variables, so both workers send the LLM the same prompt and the replies cost the same.
Each step is logged with the room (`bare: ...` lines) for the start-up breakdown.

`BARE_VOICE=1` makes it a voice worker, built as Switchboard builds a voice session of the
seeded support type (worker/session.py `build_models`, `new_session`, `room_options`): silero
VAD with the type's settings (threshold 0.5, 50 ms of speech, 550 ms of silence; loaded in a
thread while the room connects, as Switchboard does with `WORKER_PREWARM_VAD` off), turn
detection on VAD silence, faster-whisper tiny.en int8 and espeak-ng `en-us` at speed 1.0,
audio in and out of the room. livekit has no plugin for faster-whisper or espeak-ng, so both
sides use the same `stt.STT` / `tts.TTS` classes: worker/providers/local_stt.py and
local_tts.py import nothing of Switchboard (only livekit, numpy, faster-whisper and the
espeak-ng library), and this worker loads those two files by path, not through the `worker`
package (`_provider_module`), so it runs none of the platform. Each message's livekit metrics
(end of turn, transcription, LLM first token, TTS first byte, e2e) are logged as a
`bare: metrics` line for the voice bench's breakdown.
"""

import asyncio
import functools
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    ConversationItemAddedEvent,
    JobContext,
    llm,
    room_io,
    vad,
)
from livekit.agents.types import APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import openai, silero

logger = logging.getLogger("bench.bare_worker")

GREETING = os.environ.get(
    "BARE_GREETING", "Hi, you're through to support. What can I help you with today?"
)
INSTRUCTIONS = os.environ.get(
    "BARE_INSTRUCTIONS", "You are a helpful support agent. Keep replies short."
)
MODEL = os.environ.get("BARE_LLM_MODEL", "smollm2-135m-instruct")
TEMPERATURE = float(os.environ.get("BARE_TEMPERATURE", "0.4"))
MAX_TOKENS = int(os.environ.get("BARE_MAX_TOKENS", "256"))
LLM_URL = os.environ.get("LOCAL_LLM_URL", "http://127.0.0.1:8088/v1")
MAX_SESSIONS = int(os.environ.get("WORKER_MAX_SESSIONS", "8"))
VOICE = os.environ.get("BARE_VOICE", "") not in ("", "0", "false")
PROVIDERS_DIR = Path(__file__).resolve().parent.parent / "worker" / "providers"


@functools.cache
def _provider_module(name: str) -> ModuleType:
    """worker/providers/<name>.py loaded on its own, under a bench name: the provider class
    without the `worker` package around it (its settings, registry, routing)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", PROVIDERS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def voice_models() -> dict[str, Any]:
    """The support type's STT and TTS (agent_configs/defaults/support.yaml: `tiny.en`, `en`;
    `espeak-ng`, `en-us`, speed 1.0), as Switchboard's local providers build them."""
    stt_module, tts_module = _provider_module("local_stt"), _provider_module("local_tts")
    return {
        "stt": stt_module.LocalWhisperSTT(model="tiny.en", language="en"),
        "tts": tts_module.LocalTTS(model="espeak-ng", voice="en-us", speed=1.0),
    }


def load_vad() -> vad.VAD:
    """agent_configs.models.VADSpec's defaults, which the support type keeps."""
    return silero.VAD.load(
        min_speech_duration=0.05, min_silence_duration=0.55, activation_threshold=0.5
    )


def session_load(server: AgentServer) -> float:
    return min(1.0, len(server.active_jobs) / MAX_SESSIONS)


def _step(ctx: JobContext, what: str) -> None:
    logger.info("bare: %s", what, extra={"bench_room": ctx.room.name})


def _log_metrics(ctx: JobContext, event: ConversationItemAddedEvent) -> None:
    item = event.item
    if isinstance(item, llm.ChatMessage) and item.metrics:
        logger.info(
            "bare: metrics",
            extra={"bench_room": ctx.room.name, "role": item.role, "metrics": dict(item.metrics)},
        )


async def entrypoint(ctx: JobContext) -> None:
    _step(ctx, "entrypoint")
    vad_loading = asyncio.create_task(asyncio.to_thread(load_vad)) if VOICE else None
    await ctx.connect()
    _step(ctx, "connected")
    # The LLM connect options a hand-written worker on a busy local model needs as much as
    # Switchboard does (worker/session.py LOCAL_LLM_CONNECT): livekit's default 10 s timeout
    # with 3 retries times queued replies out and re-queues them until they are dropped.
    session: AgentSession = AgentSession(
        turn_handling=TurnHandlingOptions(turn_detection="vad" if VOICE else "manual"),
        conn_options=SessionConnectOptions(
            llm_conn_options=APIConnectOptions(timeout=60.0, max_retry=1)
        ),
    )
    session.on("close", lambda _: ctx.shutdown("session closed"))
    voice: dict[str, Any] = {}
    if vad_loading is not None:
        voice = {**voice_models(), "vad": await vad_loading}
        session.on("conversation_item_added", lambda event: _log_metrics(ctx, event))
    agent = Agent(
        instructions=INSTRUCTIONS,
        llm=openai.LLM(
            model=MODEL,
            base_url=LLM_URL,
            api_key="local",
            temperature=TEMPERATURE,
            max_completion_tokens=MAX_TOKENS,
        ),
        **voice,
    )
    options = room_io.RoomOptions(audio_input=VOICE, audio_output=VOICE, close_on_disconnect=True)
    await session.start(agent, room=ctx.room, room_options=options)
    _step(ctx, "session started")
    session.say(GREETING)
    _step(ctx, "greeting queued")


def create_server() -> AgentServer:
    server = AgentServer(
        port=int(os.environ.get("WORKER_HTTP_PORT", "0")),
        load_fnc=session_load,
        load_threshold=1.0,
        shutdown_process_timeout=90.0,
    )
    server.rtc_session(entrypoint, agent_name=os.environ.get("AGENT_NAME", "bare"))
    return server


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from livekit.agents import cli

    # Job processes import the entrypoint by module name: run the server from `bench.bare_worker`.
    from bench import bare_worker

    cli.run_app(bare_worker.create_server())
