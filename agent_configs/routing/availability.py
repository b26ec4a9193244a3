"""Can an agent type take a session right now? The router asks before accepting a proposal.

The answer is a reason it cannot (`"unknown agent"`, `"paused"`, `"archived"`,
`"full: 3/3 sessions"`) or None when it can, so the trail says why a proposal was skipped.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from agent_configs.egress import EgressPolicy
from agent_configs.errors import AgentNotFound
from agent_configs.models import AgentConfig, AgentStatus

UNKNOWN_AGENT = "unknown agent"

ActiveSessionCounter = Callable[[str], Awaitable[int]]
"""`await count(agent_id)`: sessions of that agent type running now (supplied by the worker)."""


class AvailabilityCheck(Protocol):
    async def unavailable_reason(self, agent_id: str) -> str | None: ...


class ConfigSource(Protocol):
    """`ConfigStore`, or anything with its `get` (the worker's and admin API's `Catalog`)."""

    async def get(self, agent_id: str) -> AgentConfig:
        """Raises AgentNotFound for an unknown agent_id."""
        ...


async def reason_config_is_unavailable(
    config: AgentConfig,
    active_sessions: ActiveSessionCounter | None,
    egress: EgressPolicy | None = None,
) -> str | None:
    """With `egress`, a config the policy refuses (written by hand, or stored before the
    operator narrowed the policy) is unavailable: the chain goes on to the next proposal."""
    if config.status != AgentStatus.ACTIVE:
        return str(config.status)
    refused = egress.refusal(config) if egress is not None else None
    if refused is not None:
        return refused
    limit = config.max_concurrent_sessions
    if limit is None or active_sessions is None:
        return None
    running = await active_sessions(config.agent_id)
    return f"full: {running}/{limit} sessions" if running >= limit else None


class StoreAvailability:
    """Reads each proposed agent type from a config source (`Catalog.availability()` builds
    one over the catalog), so a pause applies to the next room.

    Database errors propagate: "the database is down" must not read as "every agent paused".
    """

    def __init__(
        self,
        store: ConfigSource,
        active_sessions: ActiveSessionCounter | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._store = store
        self._active_sessions = active_sessions
        self._egress = egress

    async def unavailable_reason(self, agent_id: str) -> str | None:
        try:
            config = await self._store.get(agent_id)
        except AgentNotFound:
            return UNKNOWN_AGENT
        return await reason_config_is_unavailable(config, self._active_sessions, self._egress)


class MemoryAvailability:
    """The same answers from configs already in memory: for previews, tests and benchmarks."""

    def __init__(
        self, configs: Iterable[AgentConfig], active_sessions: ActiveSessionCounter | None = None
    ) -> None:
        self._configs = {config.agent_id: config for config in configs}
        self._active_sessions = active_sessions

    async def unavailable_reason(self, agent_id: str) -> str | None:
        config = self._configs.get(agent_id)
        if config is None:
            return UNKNOWN_AGENT
        return await reason_config_is_unavailable(config, self._active_sessions)


NOT_IN_POOL = "not served by this worker pool (WORKER_AGENT_TYPES)"


class PoolAvailability:
    """Only the agent types a worker pool serves (`WORKER_AGENT_TYPES`; empty = all)."""

    def __init__(self, inner: AvailabilityCheck, pool: frozenset[str]) -> None:
        self._inner = inner
        self._pool = pool

    async def unavailable_reason(self, agent_id: str) -> str | None:
        if self._pool and agent_id not in self._pool:
            return NOT_IN_POOL
        return await self._inner.unavailable_reason(agent_id)
