"""Routing decisions made by the very code the worker runs, for dry runs and token minting.

The worker's router is `Router(catalog, PoolAvailability(catalog.availability(
CapacityGuard.in_use, EgressPolicy), WORKER_AGENT_TYPES))` (worker/server.py). The same
Router and Catalog from agent_configs are used here, over this process's one catalog (the one
GET /agents/{id} reads too). The pool filter and the live capacity-slot count are the
worker's own, from agent_configs.
"""

from collections.abc import Callable, Mapping
from datetime import datetime

from agent_configs.catalog import Catalog
from agent_configs.egress import EgressPolicy
from agent_configs.routing.availability import (
    ActiveSessionCounter,
    AvailabilityCheck,
    PoolAvailability,
)
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.router import (
    ASKED_BY_THE_WORKER_ONLY,
    AskOthers,
    Router,
    RoutingDecision,
    never_ask,
)
from agent_configs.routing.rules import RoutingRules, RulesSource, StaticRules

NOT_CALLED_IN_A_PREVIEW = (
    "skipped: not called in a preview of caller-supplied rules "
    "(an admin key may ask for it with call_hooks: true)"
)


class Resolver:
    """One shared router over the catalog; throwaway routers for previews and pools.

    A dry run reads the change stamp first (`refresh(force=True)`, one small query), so it
    always decides on current configs and rules. A token's route reads it at most every
    ADMIN_API_CONFIG_CACHE_TTL_S, like GET /agents/{id}. `configs` and `rules` are the catalog
    (public so routes can invalidate it after a write, and tests can see that unknown agent
    ids do not pile up in it).
    """

    def __init__(
        self,
        catalog: Catalog,
        active_sessions: ActiveSessionCounter,
        *,
        agent_names: Mapping[str, str],
        default_agent_name: str,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.configs = self.rules = catalog
        # The worker's availability includes its egress check: a dry run says so too.
        self._availability: AvailabilityCheck = catalog.availability(active_sessions, egress)
        self._router = Router(catalog, self._availability)
        self._agent_names = dict(agent_names)
        self.default_agent_name = default_agent_name

    async def resolve(
        self,
        metadata: object,
        *,
        rules: RoutingRules | None = None,
        pool: frozenset[str] = frozenset(),
        at: datetime | None = None,
        call_hooks: bool = False,
        before_calling: Callable[[], None] | None = None,
    ) -> RoutingDecision:
        """What a worker serving `pool` (empty: every type) decides for this metadata now.

        A hook (a strategy that asks another system) in `rules`, the caller's own, is passed
        over unless `call_hooks` (the route lets only an admin ask): the URL and the headers
        naming the operator's secrets are the caller's choice there. The stored chain's hooks
        are called as for a room. `before_calling` runs once, before the first hook of this
        dry run is called; it may raise to stop it (the route's per-key rate limit).
        """
        context = RoutingContext.from_metadata(metadata)  # type: ignore[arg-type]
        await self.configs.refresh(force=True)
        ask_others = _ask_others(rules is not None and not call_hooks, before_calling)
        if rules is None and not pool and at is None:
            return await self._router.route(context, ask_others=ask_others)
        source: RulesSource = StaticRules(rules) if rules is not None else self.rules
        availability = PoolAvailability(self._availability, pool) if pool else self._availability
        router = (
            Router(source, availability)
            if at is None
            else Router(source, availability, clock=lambda: at)
        )
        return await router.route(context, ask_others=ask_others)

    async def route_for_token(self, metadata: str | None) -> RoutingDecision:
        """The type a room with this metadata gets, as far as the admin API can tell at mint time.

        Routed even with one pool (where the answer changes nothing in the token) because the
        token.minted audit event names the routed type. It is a prediction, on a catalog up to
        ADMIN_API_CONFIG_CACHE_TTL_S old: the worker routes again when the room arrives, and
        its session.started event says what the room really got. With a warm catalog and known
        agent types it costs at most the stamp read. A strategy that asks another system (the
        `webhook`) is passed over: the worker asks it when the room arrives, and asking it here
        too would call the operator's hook twice per room and hold the mint for its timeout.
        """
        await self.configs.refresh()
        return await self._router.route(
            RoutingContext.from_metadata(metadata), ask_others=never_ask(ASKED_BY_THE_WORKER_ONLY)
        )

    def agent_name_for(self, agent_id: str | None) -> str:
        """The worker agent name (pool) that serves `agent_id`; AGENT_NAME when not mapped."""
        if agent_id is None:
            return self.default_agent_name
        return self._agent_names.get(agent_id, self.default_agent_name)


def _ask_others(preview: bool, before_calling: Callable[[], None] | None) -> AskOthers | None:
    if preview:
        return never_ask(NOT_CALLED_IN_A_PREVIEW)
    if before_calling is None:
        return None
    called = False

    def ask(_strategy: str) -> None:
        nonlocal called
        if not called:
            before_calling()
            called = True

    return ask
