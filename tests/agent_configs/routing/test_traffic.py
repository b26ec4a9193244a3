"""Which agent types a routing change sends more traffic (the release gate's question), from the
rules alone: no services."""

from typing import Any

from agent_configs.routing.rules import DEFAULT_RULES, RoutingRules
from agent_configs.routing.traffic import more_traffic

A, B, C = "agent-a", "agent-b", "agent-c"


def rules(*chain: dict[str, Any]) -> RoutingRules:
    return RoutingRules.model_validate({"chain": list(chain)})


def split(*variants: tuple[str, float | None], enabled: bool = True) -> dict[str, Any]:
    listed = [
        {"agent_id": agent} if weight is None else {"agent_id": agent, "weight": weight}
        for agent, weight in variants
    ]
    return {"strategy": "ab_split", "params": {"variants": listed}, "enabled": enabled}


def default(agent: str) -> dict[str, Any]:
    return {"strategy": "default", "params": {"agent_id": agent}}


def purpose(**agents: str) -> dict[str, Any]:
    return {"strategy": "purpose", "params": {"agents": agents}}


def test_the_same_rules_send_nobody_more_traffic() -> None:
    assert more_traffic(DEFAULT_RULES, DEFAULT_RULES) == []
    reordered_params = rules(purpose(sales=B, support=A), default(A))
    assert more_traffic(rules(purpose(support=A, sales=B), default(A)), reordered_params) == []


def test_a_new_ab_variant_gains_but_the_variants_it_takes_from_do_not() -> None:
    before = rules(split((A, 1.0)), default(A))
    after = rules(split((A, 1.0), (B, 1.0)), default(A))
    assert more_traffic(before, after) == [B]


def test_a_bigger_weight_or_a_removed_rival_gains_and_a_smaller_one_does_not() -> None:
    even = rules(split((A, None), (B, 1.0)), default(C))  # no weight: 1.0, the model's default
    assert more_traffic(even, rules(split((A, 3.0), (B, 1.0)), default(C))) == [A]
    assert more_traffic(even, rules(split((A, 0.5), (B, 1.0)), default(C))) == [B]
    assert more_traffic(even, rules(split((A, 1.0)), default(C))) == [A]
    # The same shares spelled with other weights: nobody gains.
    assert more_traffic(even, rules(split((A, 2.0), (B, 2.0)), default(C))) == []


def test_a_new_rule_naming_a_type_or_an_entry_enabled_gains() -> None:
    before = rules(purpose(support=A), split((B, 1.0), enabled=False), default(A))
    assert more_traffic(before, rules(purpose(support=A, sales=C), default(A))) == [C]
    assert more_traffic(before, rules(purpose(support=A), split((B, 1.0)), default(A))) == [B]
    remapped = rules(purpose(support=B), split((B, 1.0), enabled=False), default(A))
    assert more_traffic(before, remapped) == [B]
    attributes = {
        "strategy": "user_attributes",
        "params": {"rules": [{"when": {"tier": "premium"}, "agent_id": C}]},
    }
    assert more_traffic(before, rules(attributes, *before.model_dump()["chain"])) == [C]


def test_an_entry_moved_earlier_or_one_before_it_removed_gains() -> None:
    attributes = {
        "strategy": "user_attributes",
        "params": {"rules": [{"when": {"tier": "premium"}, "agent_id": B}]},
    }
    before = rules(attributes, purpose(support=A), default(C))
    # C, the default, now gets every room the removed rule took.
    assert more_traffic(before, rules(purpose(support=A), default(C))) == [A, C]
    assert more_traffic(before, rules(purpose(support=A), attributes, default(C))) == [A]
    assert more_traffic(rules(purpose(support=A), attributes, default(C)), before) == [B]
