"""Settings of `python -m evals run` and `python -m evals serve`: the shared ones (MONGO_URI,
MONGO_DB, LIVEKIT_URL, LIVEKIT_API_KEY/SECRET) plus AGENT_NAME and, for the service, EVALS_*."""

from pydantic import Field, model_validator

from agent_configs.settings import Settings


class EvalSettings(Settings):
    agent_name: str = Field(
        default="switchboard", description="The worker's LiveKit agent name (AGENT_NAME)."
    )


class EvalServiceSettings(EvalSettings):
    evals_poll_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="Between looks for queued runs and stale ones."
    )
    evals_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a run's claim lasts without a heartbeat; the service renews it "
        "every third of this while it runs. A running run whose claim is older than this is "
        "marked error (its service stopped).",
    )
    evals_turn_timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds to wait for a turn (the CLI's --turn-timeout)."
    )
    evals_join_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for an agent to join a run's room; when none does the run "
        "is an error (no worker with AGENT_NAME is running).",
    )
    evals_tokens_wait_s: float = Field(
        default=10.0, ge=0, description="How long to wait for the sessions' end records (tokens)."
    )

    @model_validator(mode="after")
    def _heartbeat_fits_the_lease(self) -> "EvalServiceSettings":
        # The claim is renewed every lease/3: with a lease of a few seconds, one slow write or
        # a stalled event loop would let a live claim lapse, and another service would mark
        # the run it is running as stopped.
        if self.evals_lease_s < 3.0:
            raise ValueError(f"EVALS_LEASE_S ({self.evals_lease_s}) must be at least 3 s")
        return self
