"""Worker settings: the shared ones (MONGO_URI, LIVEKIT_URL, the model profile and LOCAL_LLM_*,
...) plus how this worker runs."""

import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from agent_configs.settings import Settings


class WorkerSettings(Settings):
    agent_name: str = Field(
        default="switchboard",
        description="The LiveKit agent name this worker registers for explicit dispatch.",
    )
    worker_agent_types: str = Field(
        default="",
        description="Comma-separated agent_ids this worker pool serves; empty = all of them.",
    )
    worker_max_sessions: int = Field(
        default=8,
        ge=1,
        description="Sessions this worker serves at once: it takes exactly this many rooms.",
    )
    worker_target_load: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="livekit-server's `agents.target_load` (0.7 unless its config says otherwise): "
        "the reported load reaches it exactly when WORKER_MAX_SESSIONS sessions run.",
    )
    worker_prewarm_vad: bool = Field(
        default=False,
        description="Load silero VAD in every idle job process: voice sessions start ~50 ms sooner, "
        "each process holds ~20 MB more. Off, a voice session loads it while its room connects.",
    )
    worker_http_host: str = Field(
        default="0.0.0.0",
        description="Interface of the health and metrics endpoints. One address on purpose: livekit's "
        "default (all interfaces) opens an IPv4 and an IPv6 socket, and with port 0 they get "
        "different ports while only one is reported.",
    )
    worker_http_port: int = Field(default=8081, ge=0, description="Health endpoint port (0 = any).")
    worker_drain_timeout_s: int = Field(default=3600, ge=1)
    prometheus_port: int | None = Field(default=9100, description="Metrics port; unset = off.")
    prometheus_multiproc_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "switchboard-metrics"
    )
    spool_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "switchboard-spool",
        description="Where records wait when MongoDB is unreachable at exit; replayed on start.",
    )
    catalog_snapshot_dir: Path | None = Field(
        default=None,
        description="Where job processes keep the last-known good configs and routing rules, to serve "
        "rooms that arrive while MongoDB is unreachable (0700, files 0600). Default: next to SPOOL_DIR.",
    )
    session_heartbeat_s: float = Field(
        default=15.0,
        gt=0,
        description="How often a live session (and its capacity slot) says it is alive.",
    )
    session_stale_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A session silent this long lost its worker: marked aborted.",
    )
    routing_rules_ttl_s: float = Field(
        default=30.0,
        ge=0.0,
        description="Rules are re-read as soon as any config or rules write moves the change stamp; "
        "this is only the longest they are kept without one (hand edits that bypass the stores).",
    )
    cloud_stt_model: str = "nova-3"
    cloud_tts_model: str = "aura-2-andromeda-en"

    @property
    def catalog_dir(self) -> Path:
        """One directory per database: two databases on one host never share a catalog."""
        base = self.catalog_snapshot_dir or self.spool_dir.with_name(
            f"{self.spool_dir.name}-catalog"
        )
        return base / self.mongo_db

    @property
    def pool(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.worker_agent_types.split(",") if t.strip())


@lru_cache
def get_worker_settings() -> WorkerSettings:
    return WorkerSettings()
