"""Settings of `python -m channels serve`: the shared ones (MONGO_*, LIVEKIT_*) plus AGENT_NAME
and CHANNELS_*."""

import tempfile
from pathlib import Path

from pydantic import Field

from agent_configs.settings import Settings


class ChannelSettings(Settings):
    agent_name: str = Field(
        default="switchboard", description="The worker's LiveKit agent name (AGENT_NAME)."
    )
    channels_host: str = Field(default="127.0.0.1", description="Where the HTTP side listens.")
    channels_port: int = Field(
        default=8090,
        ge=0,
        le=65535,
        description="The Telegram webhooks, the HTTP chat API and /healthz (0: any free port).",
    )
    channels_reload_s: float = Field(
        default=2.0, gt=0, le=300, description="Between looks for changed channel bindings."
    )
    channels_reply_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a message waits for the agent's answer."
    )
    channels_join_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a new conversation waits for an agent."
    )
    channels_spool_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "switchboard-channels-spool",
        description="Where message records and events wait while the database is away.",
    )
