"""Dispatcher settings: the shared ones (MONGO_URI, MONGO_DB, EGRESS_*) plus DISPATCHER_*."""

from functools import lru_cache

from pydantic import Field, model_validator

from agent_configs.settings import Settings


class DispatcherSettings(Settings):
    dispatcher_poll_interval_s: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="Between looks at the outbox and at due deliveries when nothing woke the loop sooner.",
    )
    dispatcher_batch: int = Field(
        default=100, ge=1, le=10_000, description="Outbox events fanned out per pass."
    )
    dispatcher_max_in_flight: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Deliveries this process sends at once (one per ordering pair).",
    )
    dispatcher_timeout_s: float = Field(
        default=10.0, gt=0, description="One POST, connect to last byte."
    )
    dispatcher_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a taken delivery is this process's; must outlast the timeout, so a "
        "live dispatcher's request always ends before another may take it.",
    )
    dispatcher_backoff_initial_s: float = Field(
        default=5.0, gt=0, description="Cap of the first retry's wait."
    )
    dispatcher_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Cap of any retry's wait."
    )
    dispatcher_max_attempts: int = Field(
        default=15, ge=1, description="Attempts before a delivery is dead-lettered."
    )
    dispatcher_max_age_s: float = Field(
        default=86_400.0,
        gt=0,
        description="Retrying stops this long after the first failed attempt.",
    )
    dispatcher_shutdown_grace_s: float = Field(
        default=15.0,
        ge=0,
        description="On SIGTERM, how long requests in flight may take to finish.",
    )
    dispatcher_paused_recheck_s: float = Field(
        default=30.0,
        gt=0,
        description="A delivery of a paused subscription is looked at again after this.",
    )
    dispatcher_stats_interval_s: float = Field(
        default=15.0, gt=0, description="Between refreshes of the pending / oldest-age gauges."
    )
    dispatcher_metrics_host: str = Field(
        default="127.0.0.1", description="Interface of /metrics, /healthz, /readyz."
    )
    dispatcher_metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Port of /metrics and the probes."
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_request(self) -> "DispatcherSettings":
        # A request still running when its lease ends could be sent again by another replica
        # at the same time: the one thing leases exist to prevent.
        if self.dispatcher_lease_s < self.dispatcher_timeout_s + 1.0:
            raise ValueError(
                f"DISPATCHER_LEASE_S ({self.dispatcher_lease_s}) must exceed DISPATCHER_TIMEOUT_S "
                f"({self.dispatcher_timeout_s}) by at least 1 s"
            )
        return self


@lru_cache
def get_dispatcher_settings() -> DispatcherSettings:
    return DispatcherSettings()
