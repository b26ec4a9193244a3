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
"""

import logging
import os
import sys
from pathlib import Path

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, room_io
from livekit.agents.types import APIConnectOptions
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import openai

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


def session_load(server: AgentServer) -> float:
    return min(1.0, len(server.active_jobs) / MAX_SESSIONS)


def _step(ctx: JobContext, what: str) -> None:
    logger.info("bare: %s", what, extra={"bench_room": ctx.room.name})


async def entrypoint(ctx: JobContext) -> None:
    _step(ctx, "entrypoint")
    await ctx.connect()
    _step(ctx, "connected")
    # The LLM connect options a hand-written worker on a busy local model needs as much as
    # Switchboard does (worker/session.py LOCAL_LLM_CONNECT): livekit's default 10 s timeout
    # with 3 retries times queued replies out and re-queues them until they are dropped.
    session: AgentSession = AgentSession(
        turn_handling=TurnHandlingOptions(turn_detection="manual"),
        conn_options=SessionConnectOptions(
            llm_conn_options=APIConnectOptions(timeout=60.0, max_retry=1)
        ),
    )
    session.on("close", lambda _: ctx.shutdown("session closed"))
    agent = Agent(
        instructions=INSTRUCTIONS,
        llm=openai.LLM(
            model=MODEL,
            base_url=LLM_URL,
            api_key="local",
            temperature=TEMPERATURE,
            max_completion_tokens=MAX_TOKENS,
        ),
    )
    options = room_io.RoomOptions(audio_input=False, audio_output=False, close_on_disconnect=True)
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
