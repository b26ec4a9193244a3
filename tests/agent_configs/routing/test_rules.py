"""Routing rules in MongoDB: defaults, saving with version checks, validation, reaching the router.

How fresh the rules a room is routed on are (the change stamp, max age, a hand-broken
document, an outage) is the catalog's: tests/agent_configs/test_catalog.py.
"""

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.catalog import Catalog
from agent_configs.changes import ChangeStamp
from agent_configs.routing import (
    DEFAULT_RULES,
    InvalidRoutingRules,
    MemoryAvailability,
    Router,
    RoutingContext,
    RulesStore,
    RulesVersionConflict,
    StaticRules,
    check_agent_ids,
    validate_rules,
)
from agent_configs.routing.strategies import DEFAULT_PURPOSE_AGENTS
from agent_configs.store import ROUTING_RULES, ConfigStore
from tests.agent_configs.routing.helpers import seed_builtin_agents
from tests.factories import support_config


def with_chain(*changes: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    """The default rules' definition with some chain entries replaced."""
    definition = DEFAULT_RULES.definition()
    for index, entry in changes:
        definition["chain"][index] = entry
    return definition


PREMIUM_TO_SALES = (
    2,
    {
        "strategy": "user_attributes",
        "params": {
            "rules": [
                {
                    "when": {"plan.tier": "premium", "$score": {"gte": 5}},
                    "agent_id": "sales-agent-v1",
                },
            ]
        },
    },
)


@pytest.fixture
def rules_store(database: AsyncDatabase) -> RulesStore:
    return RulesStore(database)


async def test_without_a_saved_document_the_defaults_apply(
    rules_store: RulesStore, store: ConfigStore
) -> None:
    current = await rules_store.current()
    assert current is DEFAULT_RULES and current.version == 0
    assert [(e.strategy, e.enabled) for e in current.chain] == [
        ("explicit", True),
        ("purpose", True),
        ("user_attributes", True),
        ("ab_split", False),
        ("time_window", False),
        ("default", True),
    ]
    assert validate_rules(DEFAULT_RULES) is DEFAULT_RULES
    await seed_builtin_agents(store)
    assert await check_agent_ids(DEFAULT_RULES, store) == []


async def test_saved_rules_round_trip_with_dotted_and_dollar_keys(rules_store: RulesStore) -> None:
    saved = await rules_store.save(with_chain(PREMIUM_TO_SALES), expected_version=0)
    assert saved.version == 1 and saved.updated_at is not None
    current = await rules_store.current()
    assert current == saved
    assert current.chain[2].params == PREMIUM_TO_SALES[1]["params"]
    assert await rules_store.get_version(1) == saved
    assert await rules_store.get_version(0) is DEFAULT_RULES
    assert await rules_store.get_version(7) is None


async def test_stale_save_is_a_conflict_and_changes_nothing(rules_store: RulesStore) -> None:
    first = await rules_store.save(with_chain(PREMIUM_TO_SALES), expected_version=0)
    with pytest.raises(RulesVersionConflict) as caught:
        await rules_store.save(DEFAULT_RULES, expected_version=0)
    assert (caught.value.expected, caught.value.current) == (0, 1)
    assert "version 1, not 0" in str(caught.value)
    with pytest.raises(RulesVersionConflict, match="version 1, not 5"):
        await rules_store.save(DEFAULT_RULES, expected_version=5)
    assert await rules_store.current() == first
    assert await rules_store.get_version(6) is None


async def test_concurrent_savers_from_one_version_one_wins(
    rules_store: RulesStore, database: AsyncDatabase
) -> None:
    await rules_store.save(DEFAULT_RULES, expected_version=0)
    fallbacks = [
        "support-agent-v1",
        "sales-agent-v1",
        "onboarding-agent-v1",
        "pte-interview-agent-v1",
        "x-agent",
    ]
    results = await asyncio.gather(
        *(
            rules_store.save(
                with_chain((5, {"strategy": "default", "params": {"agent_id": a}})),
                expected_version=1,
            )
            for a in fallbacks
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, RulesVersionConflict)]
    assert len(winners) == 1 and len(conflicts) == 4
    current = await rules_store.current()
    assert current.version == 2 and current.chain[5] == winners[0].chain[5]
    assert await database[ROUTING_RULES].count_documents({}) == 2


async def test_invalid_rules_name_index_strategy_and_field_and_write_nothing(
    rules_store: RulesStore, database: AsyncDatabase
) -> None:
    bad = with_chain(
        (1, {"strategy": "purpose", "params": {"agents": {"sales": "Sales Agent"}}}),
        (
            2,
            {
                "strategy": "user_attributes",
                "params": {"rules": [{"when": {"tier": {"gtee": 1}}, "agent_id": "x-y"}]},
            },
        ),
        (3, {"strategy": "vip_desk"}),
        (
            4,
            {
                "strategy": "time_window",
                "enabled": False,
                "params": {
                    "windows": [
                        {
                            "start": "09:00",
                            "end": "17:00",
                            "timezone": "Mars/Olympus",
                            "agent_id": "support-agent-v1",
                        }
                    ]
                },
            },
        ),
    )
    with pytest.raises(InvalidRoutingRules) as caught:
        await rules_store.save(bad, expected_version=0)
    problems = [(p.index, p.strategy, p.field) for p in caught.value.problems]
    assert problems == [
        (1, "purpose", "params.agents.sales"),
        (2, "user_attributes", "params.rules.0.when.tier"),
        (3, "vip_desk", "strategy"),
        (4, "time_window", "params.windows.0.timezone"),
    ]
    message = str(caught.value)
    assert "chain[2] (user_attributes) params.rules.0.when.tier: unknown operator 'gtee'" in message
    assert "chain[3] (vip_desk) strategy: unknown routing strategy 'vip_desk'" in message
    assert "unknown IANA timezone 'Mars/Olympus'" in message
    assert await database[ROUTING_RULES].count_documents({}) == 0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"chain": []}, "chain: List should have at least 1 item after validation, not 0"),
        (
            {"chain": [{"strategy": "default", "params": {"agent_id": "a-b"}, "enabeld": False}]},
            "chain[0] (default) enabeld: Extra inputs are not permitted",
        ),
        (
            {"chain": [{"strategy": "Default!"}]},
            "chain[0] (Default!) strategy: String should match pattern",
        ),
        (
            {
                "chain": [{"strategy": "default", "params": {"agent_id": "a-b"}}],
                "version": 9,
                "owner": "me",
            },
            "owner: Extra inputs are not permitted",
        ),
    ],
)
def test_structural_problems_are_described(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidRoutingRules) as caught:
        validate_rules(document)
    assert any(str(p).startswith(expected) for p in caught.value.problems), caught.value.problems


async def test_referenced_agents_must_exist(store: ConfigStore) -> None:
    await seed_builtin_agents(store)
    rules = validate_rules(
        with_chain(
            (
                3,
                {
                    "strategy": "ab_split",
                    "enabled": False,
                    "params": {
                        "variants": [{"agent_id": "sales-agent-v1"}, {"agent_id": "sales-agent-v2"}]
                    },
                },
            ),
            (5, {"strategy": "default", "params": {"agent_id": "helpdesk-agent-v1"}}),
        )
    )
    problems = await check_agent_ids(rules, store)
    assert [str(p) for p in problems] == [
        "chain[3] (ab_split) params: agent 'sales-agent-v2' does not exist",
        "chain[5] (default) params: agent 'helpdesk-agent-v1' does not exist",
    ]


async def test_a_saved_edit_with_dotted_and_dollar_keys_reaches_the_router_without_restart(
    rules_store: RulesStore, store: ConfigStore, database: AsyncDatabase
) -> None:
    """Params stored as JSON text (keys with "." and "$") route as saved, from the next refresh."""
    await seed_builtin_agents(store)
    catalog = Catalog(store, rules_store, ChangeStamp(database))
    router = Router(catalog, catalog.availability())
    room = RoutingContext.from_metadata(
        '{"user_details": {"plan": {"tier": "premium"}, "$score": 7}}'
    )
    await catalog.refresh()
    before = await router.route(room)
    assert (before.agent_id, before.rules_version) == ("support-agent-v1", 0)

    await rules_store.save(with_chain(PREMIUM_TO_SALES), expected_version=0)
    await catalog.refresh()
    after = await router.route(room)
    assert (after.agent_id, after.strategy, after.rules_version) == (
        "sales-agent-v1",
        "user_attributes",
        1,
    )


async def test_by_default_a_frontend_can_name_only_the_four_built_in_agent_types() -> None:
    built_ins = MemoryAvailability(
        [support_config(agent_id=a) for a in sorted(DEFAULT_PURPOSE_AGENTS.values())]
    )
    internal = MemoryAvailability([support_config(agent_id="internal-agent"), support_config()])
    router = Router(StaticRules(DEFAULT_RULES), internal)
    decision = await router.route(RoutingContext.from_metadata({"agent_id": "internal-agent"}))
    assert decision.agent_id == "support-agent-v1" and decision.strategy == "default"
    assert "may not be picked explicitly" in decision.trail[0].reason
    for agent_id in DEFAULT_PURPOSE_AGENTS.values():
        context = RoutingContext.from_metadata({"agent_id": agent_id})
        picked = await Router(StaticRules(DEFAULT_RULES), built_ins).route(context)
        assert (picked.agent_id, picked.strategy) == (agent_id, "explicit")
