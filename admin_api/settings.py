"""Admin API settings: the shared ones (MONGO_URI, LIVEKIT_URL, ...) plus how the API runs.

Every name is an environment variable (or a `.env` line); none of them holds a value that a
response or a log line ever shows.
"""

import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from agent_configs.settings import Settings

# console/dist of the source tree this package runs from: right for a checkout (an editable
# install); an installed package is elsewhere, so the image sets ADMIN_API_CONSOLE_DIR.
SOURCE_CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console" / "dist"


class AdminSettings(Settings):
    admin_api_host: str = Field(default="127.0.0.1", description="Interface uvicorn binds to.")
    admin_api_port: int = Field(
        default=8000, ge=0, le=65535, description="Port uvicorn listens on."
    )
    admin_api_bootstrap_key: SecretStr | None = Field(
        default=None,
        description="When no API key exists yet, an admin key named `bootstrap` with this value "
        "is created at start (for `make dev`). Ignored once any key exists.",
    )
    admin_api_cors_origins: str = Field(
        default="", description="Comma-separated browser origins allowed to call the API."
    )
    agent_name: str = Field(
        default="switchboard",
        validation_alias=AliasChoices("AGENT_NAME", "agent_name"),
        description="The worker agent name a token dispatches (the default pool).",
    )
    admin_api_agent_names: dict[str, str] = Field(
        default_factory=dict,
        description='JSON agent_id -> agent name for worker pools, e.g. {"sales-agent-v1": '
        '"switchboard-sales"}. Types not listed go to AGENT_NAME.',
    )
    admin_api_public_livekit_url: str | None = Field(
        default=None, description="LiveKit URL handed to frontends; default LIVEKIT_URL."
    )
    admin_api_token_ttl_s: int = Field(
        default=3600, ge=60, le=86_400, description="Room token lifetime."
    )
    admin_api_token_rate_per_s: float = Field(
        default=10.0, gt=0, description="POST /token refill rate per API key (token bucket)."
    )
    admin_api_token_burst: int = Field(
        default=30, ge=1, description="POST /token burst per API key."
    )
    admin_api_hook_dry_run_rate_per_min: float = Field(
        default=10.0,
        gt=0,
        description="Dry runs (POST /routing/resolve) that call a routing hook: refill rate per "
        "API key and minute. Each calls the operator's service, its secrets attached.",
    )
    admin_api_hook_dry_run_burst: int = Field(
        default=10, ge=1, description="Dry runs that call a routing hook: burst per API key."
    )
    admin_api_key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="How long API keys are cached; a revocation applies after it.",
    )
    admin_api_config_cache_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="The catalog (GET /agents/{id}, token routing) reads the change stamp at most every this "
        "many seconds, and re-checks configs and rules only when it moved; writes through this process "
        "apply at once, dry runs always read it, If-Match guards every write. 0 = read it per request.",
    )
    admin_api_console_dir: Path = Field(
        default=SOURCE_CONSOLE_DIR,
        description="The web console's build (index.html, assets/, swagger/), served at /console/ "
        "and behind /docs. Default: the source tree's console/dist, which `make console` builds.",
    )
    admin_api_max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest request body."
    )
    routing_rules_ttl_s: float = Field(
        default=2.0,
        ge=0.0,
        description="The catalog's max age, as the worker's: configs and rules are re-checked after it even "
        "if the change stamp did not move (hand edits that bypass the stores).",
    )
    capacity_slot_stale_s: float = Field(
        default=90.0,
        gt=0,
        description="A capacity slot without heartbeat for this long is free (worker default).",
    )

    admin_api_redispatch_after_s: float = Field(
        default=10.0,
        ge=0,
        description="A room whose user has waited this long with no agent (LiveKit dropped its "
        "dispatch: every worker full, draining or restarting) is dispatched again; 0 = off.",
    )
    admin_api_redispatch_interval_s: float = Field(
        default=2.0, gt=0, description="Between re-dispatch sweeps."
    )
    admin_api_redispatch_backoff_s: float = Field(
        default=5.0,
        gt=0,
        description="First wait between dispatch attempts for one room; doubled each time.",
    )
    admin_api_redispatch_backoff_max_s: float = Field(
        default=60.0, gt=0, description="Longest wait between attempts."
    )
    admin_api_spool_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "switchboard-admin-spool",
        description="Where outbox events wait when MongoDB is unreachable at shutdown; written at the next "
        "start. Not the worker's SPOOL_DIR: each replays only its own collections.",
    )
    admin_trace_query_url: str | None = Field(
        default=None,
        description="The trace backend's query API (Jaeger: http://host:16686), where GET "
        "/api/v1/sessions/{id}/trace reads a session's trace; unset, that route answers 503.",
    )
    admin_trace_max_bytes: int = Field(
        default=8 << 20, ge=1024, description="Largest trace read from the trace backend."
    )
    admin_trace_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="How long a trace read may take."
    )

    @property
    def cors_origins(self) -> list[str]:
        return [
            origin.strip() for origin in self.admin_api_cors_origins.split(",") if origin.strip()
        ]

    @property
    def frontend_livekit_url(self) -> str:
        return self.admin_api_public_livekit_url or self.livekit_url or "ws://127.0.0.1:7880"


@lru_cache
def get_admin_settings() -> AdminSettings:
    return AdminSettings()
