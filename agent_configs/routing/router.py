"""The routing chain: ask each enabled strategy in order; the first AVAILABLE proposal wins.

The result is a RoutingDecision value that says what was chosen and, entry by entry, why:
it is stored with the session and served by the admin API's "explain".

Nothing a strategy does can fail a room: a strategy that is not installed, has params its
current version rejects, or raises, becomes an `error` entry in the trail and the chain
goes on. Availability errors (the database is down) do propagate, see availability.py.
"""

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from agent_configs import telemetry
from agent_configs.routing.availability import AvailabilityCheck
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.errors import RoutingError
from agent_configs.routing.registry import StrategyRegistry, default_registry
from agent_configs.routing.rules import RoutingRules, RulesSource
from agent_configs.routing.strategy import Proposal, RoutingStrategy
from agent_configs.secret_guard import secret_kind

logger = logging.getLogger(__name__)
_tracer = telemetry.tracer("switchboard.routing")

Outcome = Literal["chosen", "skipped", "no_proposal", "error"]
ASKED_BY_THE_WORKER_ONLY = (
    "asks another system: consulted when the worker routes the room, not for this prediction"
)

AskOthers = Callable[[str], str | None]
"""Asked, with the strategy's name, just before a strategy that asks another system (its
`propose` is a coroutine: the webhook) would be consulted. None lets it ask; a reason passes it
over: the trail says so and the chain goes on, as when a hook gives no answer. It may raise to
stop the route (the admin API's per-key limit of dry runs that call a hook does)."""


def never_ask(reason: str) -> AskOthers:
    """Pass over every strategy that asks another system, saying `reason` in the trail."""
    return lambda _strategy: reason


class TrailEntry(BaseModel):
    """One strategy consulted: what it proposed (`agent_id`), what came of it, and why."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    agent_id: str | None
    outcome: Outcome
    reason: str


class RoutingDecision(BaseModel):
    """`agent_id` is None when no strategy proposed an available agent type."""

    model_config = ConfigDict(frozen=True)

    agent_id: str | None
    strategy: str | None
    trail: tuple[TrailEntry, ...]
    warnings: tuple[str, ...] = ()
    rules_version: int
    decided_at: datetime
    variables: dict[str, Any] = Field(
        default_factory=dict,
        description="What the chosen strategy handed over for the session's templates (`webhook`).",
    )

    @field_serializer("variables")
    def _withhold_secrets(self, variables: dict[str, Any]) -> dict[str, Any]:
        """Variables are the operator's data and are stored with the session (`routing.variables`),
        shown by the admin API and sent in `session.started`; a string that looks like a key or
        token is not: it is replaced wherever the decision is serialized. The decision object
        itself keeps every value, for the templates."""
        return _withheld(variables)

    def summary(self) -> str:
        """One line for logs: `support-agent-v1 via purpose (explicit: no_proposal, ...)`."""
        steps = ", ".join(
            f"{e.strategy}: {e.outcome}"
            + (f" {e.agent_id} ({e.reason})" if e.outcome == "skipped" else "")
            for e in self.trail
        )
        chosen = f"{self.agent_id} via {self.strategy}" if self.agent_id else "no agent available"
        return f"{chosen} [{steps}]"


def _withheld(value: Any) -> Any:
    if isinstance(value, str):
        kind = secret_kind(value)
        return value if kind is None else f"[withheld: looks like {kind}]"
    if isinstance(value, dict):
        return {key: _withheld(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_withheld(item) for item in value]
    return value


@dataclass(frozen=True)
class ChainLink:
    """A rules entry ready to run: a built strategy, or why it could not be built."""

    name: str
    strategy: RoutingStrategy | None
    error: str | None = None


def compile_chain(rules: RoutingRules, registry: StrategyRegistry) -> tuple[ChainLink, ...]:
    return tuple(
        _link(entry.strategy, entry.params, registry) for entry in rules.chain if entry.enabled
    )


def _link(name: str, params: dict[str, object], registry: StrategyRegistry) -> ChainLink:
    try:
        return ChainLink(name, registry.build(name, params))
    except RoutingError as exc:
        return ChainLink(name, None, str(exc))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return ChainLink(name, None, f"invalid params: {problems}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Router:
    def __init__(
        self,
        rules: RulesSource,
        availability: AvailabilityCheck,
        *,
        registry: StrategyRegistry | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._rules = rules
        self._availability = availability
        self._registry = registry or default_registry()
        self._clock = clock
        self._compiled: tuple[RoutingRules, tuple[ChainLink, ...]] | None = None

    async def route(
        self, context: RoutingContext, *, ask_others: AskOthers | None = None
    ) -> RoutingDecision:
        """`ask_others` decides whether a strategy that asks another system (the webhook) is
        consulted (None: always, as the worker does). The admin API passes over the hook for a
        prediction that must not call the operator's service a second time per room
        (`never_ask(ASKED_BY_THE_WORKER_ONLY)`, the token mint) and for previews of rules a
        caller sent, and counts dry runs that do call it."""
        rules = await self._rules.current()
        now = self._clock()
        trail: list[TrailEntry] = []
        reasons: dict[str, str | None] = {}
        for link in self._chain_for(rules):
            if (
                ask_others is not None
                and link.strategy is not None
                and inspect.iscoroutinefunction(link.strategy.propose)
                and (not_asked := ask_others(link.name)) is not None
            ):
                trail.append(
                    TrailEntry(
                        strategy=link.name, agent_id=None, outcome="no_proposal", reason=not_asked
                    )
                )
                continue
            # One span per strategy consulted (a no-op unless traces are exported).
            with _tracer.start_as_current_span(
                "routing.strategy", attributes={"switchboard.strategy": link.name}
            ) as span:
                entry, variables = await self._consult(link, context, now, reasons)
                if span.is_recording():
                    span.set_attribute("switchboard.outcome", entry.outcome)
                    span.set_attribute("switchboard.agent_id", entry.agent_id or "")
            trail.append(entry)
            if entry.outcome == "chosen":
                return self._decision(
                    entry.agent_id, link.name, trail, context, rules, now, variables
                )
        return self._decision(None, None, trail, context, rules, now)

    def _chain_for(self, rules: RoutingRules) -> tuple[ChainLink, ...]:
        if self._compiled is None or self._compiled[0] is not rules:
            self._compiled = (rules, compile_chain(rules, self._registry))
            for link in self._compiled[1]:
                if link.error:
                    logger.error(
                        "routing rules v%s: %s cannot run: %s", rules.version, link.name, link.error
                    )
        return self._compiled[1]

    async def _consult(
        self,
        link: ChainLink,
        context: RoutingContext,
        now: datetime,
        reasons: dict[str, str | None],
    ) -> tuple[TrailEntry, dict[str, Any]]:
        """The trail entry, and the proposal's variables (empty unless it is chosen)."""

        def entry(
            outcome: Outcome, reason: str, agent_id: str | None = None
        ) -> tuple[TrailEntry, dict[str, Any]]:
            return TrailEntry(
                strategy=link.name, agent_id=agent_id, outcome=outcome, reason=reason
            ), {}

        if link.strategy is None:
            return entry("error", link.error or "")
        try:
            proposal = link.strategy.propose(context, now)
            if inspect.isawaitable(proposal):  # a strategy that asks another system (webhook)
                proposal = await proposal
        except Exception as exc:
            logger.exception("routing strategy %s raised", link.name)
            return entry("error", f"raised {exc!r}")
        if not isinstance(proposal, Proposal):
            return entry("error", f"returned {type(proposal).__name__}, not a Proposal")
        if proposal.agent_id is None:
            return entry("no_proposal", proposal.reason)
        if proposal.agent_id not in reasons:
            reasons[proposal.agent_id] = await self._availability.unavailable_reason(
                proposal.agent_id
            )
        unavailable = reasons[proposal.agent_id]
        if unavailable is not None:
            return entry("skipped", unavailable, proposal.agent_id)
        chosen, _ = entry("chosen", proposal.reason, proposal.agent_id)
        return chosen, dict(proposal.variables or {})

    @staticmethod
    def _decision(
        agent_id: str | None,
        strategy: str | None,
        trail: list[TrailEntry],
        context: RoutingContext,
        rules: RoutingRules,
        now: datetime,
        variables: dict[str, Any] | None = None,
    ) -> RoutingDecision:
        return RoutingDecision(
            agent_id=agent_id,
            strategy=strategy,
            trail=tuple(trail),
            warnings=context.warnings,
            rules_version=rules.version,
            decided_at=now,
            variables=variables or {},
        )
