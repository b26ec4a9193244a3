"""Routing decisions made by the very code the worker runs, for dry runs and token minting.

The worker's router is `Router(RulesLoader(RulesStore), PoolAvailability(StoreAvailability(
ConfigCache, CapacityGuard.in_use), WORKER_AGENT_TYPES))` (worker/server.py). The same
Router, RulesLoader, StoreAvailability and ConfigCache from agent_configs are used here.
The two worker-side pieces cannot be imported (nothing imports `worker`), so they are
restated in a few lines: the pool filter, with the same reason text, and the count of live
capacity slots, with the same query on `session_slots`. Both are candidates to move into
agent_configs so that there is a single copy.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from admin_api.storage import database_errors
from agent_configs.cache import ConfigCache
from agent_configs.routing.availability import AvailabilityCheck, StoreAvailability
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.router import Router, RoutingDecision
from agent_configs.routing.rules import RoutingRules, RulesLoader, RulesSource, RulesStore, StaticRules
from agent_configs.store import ConfigStore

SLOTS = "session_slots"  # worker/capacity.py
NOT_IN_POOL = "not served by this worker pool (WORKER_AGENT_TYPES)"  # worker/server.py


class LiveSlotCounter:
    """`CapacityGuard.in_use`: capacity slots whose heartbeat is recent enough."""

    def __init__(self, database: AsyncDatabase, stale_after_s: float) -> None:
        self._slots = database[SLOTS]
        self._stale_after = timedelta(seconds=stale_after_s)

    async def __call__(self, agent_id: str) -> int:
        fresh_since = datetime.now(UTC) - self._stale_after
        with database_errors():
            return await self._slots.count_documents(
                {"agent_id": agent_id, "heartbeat_at": {"$gte": fresh_since}}
            )


class PoolAvailability:
    """`worker.server.PoolAvailability`: only the agent types a worker pool serves."""

    def __init__(self, inner: AvailabilityCheck, pool: frozenset[str]) -> None:
        self._inner = inner
        self._pool = pool

    async def unavailable_reason(self, agent_id: str) -> str | None:
        if self._pool and agent_id not in self._pool:
            return NOT_IN_POOL
        return await self._inner.unavailable_reason(agent_id)


class Resolver:
    """One shared router over the stored rules; throwaway routers for previews and pools."""

    def __init__(
        self,
        database: AsyncDatabase,
        store: ConfigStore,
        rules_store: RulesStore,
        *,
        rules_ttl_s: float,
        slot_stale_s: float,
        agent_names: Mapping[str, str],
        default_agent_name: str,
    ) -> None:
        self._availability = StoreAvailability(ConfigCache(store), LiveSlotCounter(database, slot_stale_s))
        self.rules = RulesLoader(rules_store, ttl_s=rules_ttl_s)
        self._router = Router(self.rules, self._availability)
        self._agent_names = dict(agent_names)
        self.default_agent_name = default_agent_name

    async def resolve(
        self,
        metadata: object,
        *,
        rules: RoutingRules | None = None,
        pool: frozenset[str] = frozenset(),
        at: datetime | None = None,
    ) -> RoutingDecision:
        """What a worker serving `pool` (empty: every type) decides for this metadata now."""
        context = RoutingContext.from_metadata(metadata)  # type: ignore[arg-type]
        if rules is None and not pool and at is None:
            return await self._router.route(context)
        source: RulesSource = StaticRules(rules) if rules is not None else self.rules
        availability = PoolAvailability(self._availability, pool) if pool else self._availability
        router = (
            Router(source, availability) if at is None else Router(source, availability, clock=lambda: at)
        )
        return await router.route(context)

    @property
    def has_pools(self) -> bool:
        return bool(self._agent_names)

    def agent_name_for(self, agent_id: str | None) -> str:
        """The worker agent name (pool) that serves `agent_id`; AGENT_NAME when not mapped."""
        if agent_id is None:
            return self.default_agent_name
        return self._agent_names.get(agent_id, self.default_agent_name)
