"""Process settings, read once from the environment and `.env`.

The names are the ones LiveKit and MongoDB users already know, so an existing `.env`
works unchanged.
"""

from functools import cached_property, lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_configs.egress import EgressPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mongo_uri: str | None = Field(
        default=None,
        description="MongoDB connection string. Unset: the local devstack starts FerretDB.",
    )
    mongo_db: str = Field(default="switchboard", description="Database holding configs and sessions.")
    mongo_timeout_ms: int = Field(
        default=3000, ge=100, description="How long to wait for the database before giving up."
    )

    livekit_url: str | None = Field(
        default=None, description="LiveKit server URL. Unset: the local devstack starts one."
    )
    livekit_api_key: str = "devkey"
    livekit_api_secret: SecretStr = SecretStr("secret")

    openai_api_key: SecretStr | None = None
    deepgram_api_key: SecretStr | None = None

    @cached_property
    def egress(self) -> EgressPolicy:
        """The operator's egress policy (`EGRESS_SECRETS`, `EGRESS_HOSTS`): read with the rest."""
        return EgressPolicy()


@lru_cache
def get_settings() -> Settings:
    return Settings()
