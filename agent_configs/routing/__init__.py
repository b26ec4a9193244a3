"""How a room finds its agent type: metadata -> RoutingContext -> strategy chain -> decision.

catalog = Catalog(ConfigStore(db), RulesStore(db), ChangeStamp(db))   # agent_configs.catalog
router = Router(catalog, catalog.availability(count_sessions))
await catalog.refresh()                       # once per room: reads the change stamp
decision = await router.route(RoutingContext.from_metadata(job_metadata))  # .agent_id, .trail
"""

from agent_configs.routing.availability import (
    ActiveSessionCounter,
    AvailabilityCheck,
    ConfigSource,
    MemoryAvailability,
    StoreAvailability,
)
from agent_configs.routing.context import MAX_METADATA_BYTES, RoutingContext
from agent_configs.routing.errors import (
    InvalidRoutingRules,
    RoutingError,
    RulesProblem,
    RulesVersionConflict,
    StrategyLoadError,
    UnknownStrategy,
)
from agent_configs.routing.intents import IntentMatch, match_intent
from agent_configs.routing.registry import ENTRY_POINT_GROUP, StrategyRegistry, default_registry
from agent_configs.routing.router import Router, RoutingDecision, TrailEntry
from agent_configs.routing.rules import (
    DEFAULT_RULES,
    ChainEntry,
    RoutingRules,
    RulesSource,
    RulesStore,
    StaticRules,
    check_agent_ids,
    validate_rules,
)
from agent_configs.routing.strategy import Proposal, RoutingStrategy

__all__ = [
    "DEFAULT_RULES",
    "ENTRY_POINT_GROUP",
    "MAX_METADATA_BYTES",
    "ActiveSessionCounter",
    "AvailabilityCheck",
    "ConfigSource",
    "ChainEntry",
    "IntentMatch",
    "InvalidRoutingRules",
    "MemoryAvailability",
    "Proposal",
    "Router",
    "RoutingContext",
    "RoutingDecision",
    "RoutingError",
    "RoutingRules",
    "RoutingStrategy",
    "RulesProblem",
    "RulesSource",
    "RulesStore",
    "RulesVersionConflict",
    "StaticRules",
    "StoreAvailability",
    "StrategyLoadError",
    "StrategyRegistry",
    "TrailEntry",
    "UnknownStrategy",
    "check_agent_ids",
    "default_registry",
    "match_intent",
    "validate_rules",
]
