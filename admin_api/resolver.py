"""Routing decisions made by the very code the worker runs, for dry runs and token minting.

The worker's router is `Router(RulesLoader(RulesStore), PoolAvailability(StoreAvailability(
ConfigCache, CapacityGuard.in_use, EgressPolicy), WORKER_AGENT_TYPES))` (worker/server.py). The same
Router, RulesLoader, StoreAvailability and ConfigCache from agent_configs are used here.
The pool filter and the live capacity-slot count are the worker's own, from agent_configs.
"""

from collections.abc import Mapping
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cache import ConfigCache
from agent_configs.capacity import CapacityGuard
from agent_configs.egress import EgressPolicy
from agent_configs.routing.availability import ConfigSource, PoolAvailability, StoreAvailability
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.router import Router, RoutingDecision
from agent_configs.routing.rules import RoutingRules, RulesLoader, RulesSource, RulesStore, StaticRules
from agent_configs.store import ConfigStore


class Resolver:
    """One shared router over the stored rules; throwaway routers for previews and pools.

    `pool_choice_configs` may be a cached config source: it only serves `route_for_token`
    (which worker pool a token dispatches, and the type its audit event names), never a dry
    run. `configs` is the version-checked cache dry runs read through (public so tests can
    see that unknown agent ids do not pile up in it).
    """

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
        pool_choice_configs: ConfigSource | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        slots = CapacityGuard(database, stale_after_s=slot_stale_s).in_use
        self.configs = ConfigCache(store)
        # The worker's availability includes its egress check: a dry run says so too.
        self._availability = StoreAvailability(self.configs, slots, egress)
        self.rules = RulesLoader(rules_store, ttl_s=rules_ttl_s)
        self._router = Router(self.rules, self._availability)
        self._pool_router = (
            Router(self.rules, StoreAvailability(pool_choice_configs, slots, egress))
            if pool_choice_configs is not None
            else self._router
        )
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

    async def route_for_token(self, metadata: str | None) -> RoutingDecision:
        """The type a room with this metadata gets, as far as the admin API can tell at mint time.

        Routed even with one pool (where the answer changes nothing in the token) because the
        token.minted audit event names the routed type. It is a prediction, on configs up to
        the read-cache TTL old and rules up to ROUTING_RULES_TTL_S old: the worker routes again
        when the room arrives, and its session.started event says what the room really got.
        With warm caches and known agent types it costs no database round trip.
        """
        return await self._pool_router.route(RoutingContext.from_metadata(metadata))

    def agent_name_for(self, agent_id: str | None) -> str:
        """The worker agent name (pool) that serves `agent_id`; AGENT_NAME when not mapped."""
        if agent_id is None:
            return self.default_agent_name
        return self._agent_names.get(agent_id, self.default_agent_name)
