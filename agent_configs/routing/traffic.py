"""Which agent types a routing change sends more traffic, for the release gate.

What rooms a rule will match cannot be known from the rules alone (it depends on the rooms),
so this judges what the rules say about each type, strategy by strategy, over the enabled
entries. A type gets more traffic when the new rules, compared with the old:
- name it more often in some strategy's params (a new rule, purpose, window or A/B variant
  naming it, an entry naming it enabled, a strategy naming it added);
- give it a bigger share of a weighted list (a bigger weight, or another variant removed);
- put its first entry earlier (fewer enabled entries before it get the room first).
Not seen: a condition or a time window widened inside a rule that already named it, and a
strategy that may propose any type (`explicit` without `allowed_agent_ids`), which names none.

Params are read through each strategy's own `Params` model (defaults filled: a variant given
without a weight weighs 1.0), and only the ids its `agent_ids()` says it can propose count,
so a plugged-in strategy is judged the same way without knowing it here.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agent_configs.routing.errors import RoutingError
from agent_configs.routing.registry import StrategyRegistry, default_registry
from agent_configs.routing.rules import RoutingRules

SHARE_EPSILON = 1e-9


@dataclass
class Exposure:
    """What the rules say about one agent type."""

    first_entry: int | None = None
    """How many enabled entries come before the first one that can propose it."""
    mentions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Per strategy: how often its params name the type."""
    shares: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Per strategy: its part of each weighted list (`weight` beside `agent_id`), summed."""


def exposures(rules: RoutingRules, registry: StrategyRegistry | None = None) -> dict[str, Exposure]:
    registry = registry or default_registry()
    found: dict[str, Exposure] = defaultdict(Exposure)
    enabled = [entry for entry in rules.chain if entry.enabled]
    for rank, entry in enumerate(enabled):
        try:
            strategy = registry.get(entry.strategy)
            params = strategy.Params.model_validate(dict(entry.params))
            proposable = strategy(params).agent_ids()
        except (RoutingError, ValidationError):
            continue  # validate_rules reports it; an entry that does not build routes nothing
        dumped = params.model_dump(mode="json")
        for agent_id in proposable:
            exposure = found[agent_id]
            if exposure.first_entry is None:
                exposure.first_entry = rank
            exposure.mentions[entry.strategy] += _mentions(dumped, agent_id)
            exposure.shares[entry.strategy] += _share(dumped, agent_id)
    return dict(found)


def more_traffic(
    old: RoutingRules, new: RoutingRules, registry: StrategyRegistry | None = None
) -> list[str]:
    """The agent types `new` sends more traffic than `old` (see the module docstring), sorted."""
    before, after = exposures(old, registry), exposures(new, registry)
    return sorted(
        agent_id
        for agent_id, exposure in after.items()
        if _gains(before.get(agent_id, Exposure()), exposure)
    )


def _gains(old: Exposure, new: Exposure) -> bool:
    if new.first_entry is not None and (
        old.first_entry is None or new.first_entry < old.first_entry
    ):
        return True
    if any(count > old.mentions.get(name, 0) for name, count in new.mentions.items()):
        return True
    return any(
        share > old.shares.get(name, 0.0) + SHARE_EPSILON for name, share in new.shares.items()
    )


def _mentions(value: Any, agent_id: str) -> int:
    if isinstance(value, str):
        return int(value == agent_id)
    if isinstance(value, dict):
        return sum(_mentions(item, agent_id) for item in value.values())
    if isinstance(value, list):
        return sum(_mentions(item, agent_id) for item in value)
    return 0


def _share(value: Any, agent_id: str) -> float:
    """The type's weight over the total of every list of `{agent_id, weight}` items."""
    if isinstance(value, dict):
        return sum(_share(item, agent_id) for item in value.values())
    if not isinstance(value, list):
        return 0.0
    weighted = bool(value) and all(
        isinstance(item, dict)
        and isinstance(item.get("agent_id"), str)
        and isinstance(item.get("weight"), int | float)
        for item in value
    )
    if not weighted:
        return sum(_share(item, agent_id) for item in value)
    total = sum(float(item["weight"]) for item in value)
    mine = sum(float(item["weight"]) for item in value if item["agent_id"] == agent_id)
    return mine / total if total > 0 else 0.0
