"""Process settings, read once from the environment and `.env`.

The names are the ones LiveKit and MongoDB users already know, so an existing `.env`
works unchanged.
"""

from functools import cached_property, lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_configs.egress import EgressPolicy

# LiveKit's documented `--dev` keys: what a local livekit-server accepts, and public.
DEV_LIVEKIT_API_KEY = "devkey"
DEV_LIVEKIT_API_SECRET = "secret"
DEV_WEBHOOK_ENCRYPTION_KEY = "c3dpdGNoYm9hcmQtZGV2c3RhY2std2ViaG9va3MtMDE="
"""The Fernet key `make dev` encrypts webhook signing secrets with: published here, so refused
outside dev mode like LiveKit's dev keys."""


class UnsafeSettings(ValueError):
    """Settings a process refuses to start with; the message names the variables to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mongo_uri: str | None = Field(
        default=None,
        description="MongoDB connection string. Unset: the local devstack starts FerretDB.",
    )
    mongo_db: str = Field(
        default="switchboard", description="Database holding configs and sessions."
    )
    mongo_timeout_ms: int = Field(
        default=3000, ge=100, description="How long to wait for the database before giving up."
    )

    livekit_url: str | None = Field(
        default=None, description="LiveKit server URL. Unset: the local devstack starts one."
    )
    livekit_api_key: str = DEV_LIVEKIT_API_KEY
    livekit_api_secret: SecretStr = SecretStr(DEV_LIVEKIT_API_SECRET)
    switchboard_dev_mode: bool = Field(
        default=False,
        description="Allow LiveKit's published dev keys (devkey/secret): a local stack only. The "
        "devstack and the tests set it; without it the worker and the admin API refuse them.",
    )

    webhook_encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key the webhook signing secrets the admin API generates are stored under "
        "(comma-separate several to rotate it: the first encrypts, all decrypt). The admin API and the "
        "dispatcher need the same one; unset, only env-named secrets (secret_env) can be used.",
    )

    openai_api_key: SecretStr | None = None
    deepgram_api_key: SecretStr | None = None

    # Which model a `local` agent type really runs on: the worker sends its requests there, the
    # admin API reports it (GET /api/v1/models/local), so both read the same variables.
    model_profile: Literal["local", "cloud"] = Field(
        default="local",
        validation_alias=AliasChoices("SWITCHBOARD_MODEL_PROFILE", "model_profile"),
        description="`cloud` runs agent types configured with `local` providers on OpenAI + "
        "Deepgram instead, without editing any config.",
    )
    local_llm_url: str = Field(
        default="http://127.0.0.1:8088/v1",
        description="The OpenAI-compatible endpoint of every `local` LLM that names no base_url of its own.",
    )
    local_llm_model: str | None = Field(
        default=None,
        description="The model name sent to LOCAL_LLM_URL for every such `local` LLM (e.g. `llama3.2:3b` "
        "on Ollama). Unset: each agent type's own `llm.model`.",
    )
    local_llm_embedded: bool = Field(
        default=False,
        description="LOCAL_LLM_URL is the embedded SmolLM2-135M (set by `make dev` when it starts it): "
        "its replies prove the wiring, not quality.",
    )
    cloud_llm_model: str = "gpt-4o-mini"

    @field_validator("local_llm_model", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def check_safe_for_production(self) -> None:
        """Refuse LiveKit's dev keys unless SWITCHBOARD_DEV_MODE=true asks for them.

        They are published (and the defaults when the variables are unset): with them anyone
        can mint a token for any room of a server that accepts them. A worker or admin API
        that starts with them against a real server is a misconfiguration, not a choice."""
        if self.switchboard_dev_mode:
            return
        dev_values = [
            name
            for name, is_dev in (
                ("LIVEKIT_API_KEY", self.livekit_api_key == DEV_LIVEKIT_API_KEY),
                (
                    "LIVEKIT_API_SECRET",
                    self.livekit_api_secret.get_secret_value() == DEV_LIVEKIT_API_SECRET,
                ),
                (
                    "WEBHOOK_ENCRYPTION_KEY",
                    self.webhook_encryption_key is not None
                    and DEV_WEBHOOK_ENCRYPTION_KEY
                    in self.webhook_encryption_key.get_secret_value().split(","),
                ),
            )
            if is_dev
        ]
        if dev_values:
            raise UnsafeSettings(
                f"published development keys are set ({', '.join(dev_values)}; LiveKit's "
                f"{DEV_LIVEKIT_API_KEY}/{DEV_LIVEKIT_API_SECRET} are also the defaults when unset): "
                "anyone can sign tokens or read webhook secrets with them. Set your own "
                "(LIVEKIT_API_KEY and LIVEKIT_API_SECRET to your LiveKit server's, WEBHOOK_ENCRYPTION_KEY "
                "to a new Fernet key), or SWITCHBOARD_DEV_MODE=true for a local development stack."
            )

    @cached_property
    def egress(self) -> EgressPolicy:
        """The operator's egress policy (`EGRESS_SECRETS`, `EGRESS_HOSTS`): read with the rest."""
        return EgressPolicy()


@lru_cache
def get_settings() -> Settings:
    return Settings()
