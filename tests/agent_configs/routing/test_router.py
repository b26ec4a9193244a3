"""The chain against real agent types in the store: what a room gets, and the trail saying why."""

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from agent_configs.models import AgentStatus
from agent_configs.routing import (
    DEFAULT_RULES,
    MAX_METADATA_BYTES,
    MemoryAvailability,
    Proposal,
    Router,
    RoutingContext,
    RoutingDecision,
    RoutingRules,
    StaticRules,
    StoreAvailability,
    StrategyRegistry,
)
from agent_configs.routing.strategies import BUILTIN_STRATEGIES
from agent_configs.store import ConfigStore
from tests.agent_configs.routing.helpers import builtin_configs, fixed_clock, seed_builtin_agents

MONDAY_NOON = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def rules(*chain: dict[str, Any]) -> StaticRules:
    return StaticRules(RoutingRules.model_validate({"chain": list(chain)}))


def trail_of(decision: RoutingDecision) -> list[tuple[str, str | None, str, str]]:
    return [(e.strategy, e.agent_id, e.outcome, e.reason) for e in decision.trail]


async def route(router: Router, metadata: Any) -> RoutingDecision:
    return await router.route(RoutingContext.from_metadata(metadata))


@pytest.fixture
async def seeded(store: ConfigStore) -> ConfigStore:
    await seed_builtin_agents(store)
    return store


async def test_default_rules_route_the_brief_examples(seeded: ConfigStore) -> None:
    router = Router(StaticRules(DEFAULT_RULES), StoreAvailability(seeded))
    cases = {
        '{"agent_id": "sales-agent-v1", "purpose": "support"}': ("sales-agent-v1", "explicit"),
        '{"purpose": "interview", "user_id": "u-1"}': ("pte-interview-agent-v1", "purpose"),
        '{"user_details": {"is_new_user": true}}': ("onboarding-agent-v1", "user_attributes"),
        '{"user_details": {"tier": "premium"}}': ("support-agent-v1", "user_attributes"),
        '{"user_id": "u-1"}': ("support-agent-v1", "default"),
        "": ("support-agent-v1", "default"),
    }
    for metadata, expected in cases.items():
        decision = await route(router, metadata)
        assert (decision.agent_id, decision.strategy) == expected, metadata
    assert [e.strategy for e in decision.trail] == [
        "explicit",
        "purpose",
        "user_attributes",
        "default",
    ]


async def test_unavailable_proposals_are_skipped_with_their_reason(seeded: ConfigStore) -> None:
    await seeded.archive("sales-agent-v1")
    await seeded.set_status("pte-interview-agent-v1", AgentStatus.PAUSED)
    onboarding = await seeded.get("onboarding-agent-v1")
    await seeded.update(
        onboarding.model_copy(update={"max_concurrent_sessions": 3}), onboarding.version
    )
    running = {"onboarding-agent-v1": 3, "support-agent-v1": 7}

    async def active_sessions(agent_id: str) -> int:
        return running.get(agent_id, 0)

    router = Router(
        rules(
            {"strategy": "explicit"},
            {"strategy": "purpose"},
            {"strategy": "user_attributes", "params": DEFAULT_RULES.chain[2].params},
            {"strategy": "default", "params": {"agent_id": "pte-interview-agent-v1"}},
            {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
        ),
        StoreAvailability(seeded, active_sessions),
    )
    decision = await route(
        router,
        {
            "agent_id": "ghost-agent-v9",
            "purpose": "sales",
            "user_details": {"is_new_user": True},
        },
    )
    assert (decision.agent_id, decision.strategy) == ("support-agent-v1", "default")
    assert trail_of(decision) == [
        ("explicit", "ghost-agent-v9", "skipped", "unknown agent"),
        ("purpose", "sales-agent-v1", "skipped", "archived"),
        ("user_attributes", "onboarding-agent-v1", "skipped", "full: 3/3 sessions"),
        ("default", "pte-interview-agent-v1", "skipped", "paused"),
        ("default", "support-agent-v1", "chosen", "the fallback agent type"),
    ]

    running["onboarding-agent-v1"] = 2
    assert (
        await route(router, {"user_details": {"is_new_user": True}})
    ).agent_id == "onboarding-agent-v1"


async def test_a_pause_applies_to_the_next_room_without_restart(seeded: ConfigStore) -> None:
    router = Router(StaticRules(DEFAULT_RULES), StoreAvailability(seeded))
    room = {"purpose": "sales"}
    assert (await route(router, room)).agent_id == "sales-agent-v1"
    await seeded.set_status("sales-agent-v1", AgentStatus.PAUSED)
    decision = await route(router, room)
    assert decision.agent_id == "support-agent-v1"
    assert ("purpose", "sales-agent-v1", "skipped", "paused") in trail_of(decision)


async def test_nothing_available_is_a_decision_without_agent(seeded: ConfigStore) -> None:
    await seeded.set_status("support-agent-v1", AgentStatus.PAUSED)
    router = Router(StaticRules(DEFAULT_RULES), StoreAvailability(seeded))
    decision = await route(router, {"user_details": {"tier": "premium"}})
    assert (decision.agent_id, decision.strategy) == (None, None)
    assert trail_of(decision) == [
        ("explicit", None, "no_proposal", "metadata has no agent_id"),
        ("purpose", None, "no_proposal", "metadata has no purpose"),
        ("user_attributes", "support-agent-v1", "skipped", "paused"),
        ("default", "support-agent-v1", "skipped", "paused"),
    ]
    assert decision.summary().startswith("no agent available [explicit: no_proposal")


@pytest.mark.parametrize(
    ("metadata", "warning"),
    [
        ("not json at all", "metadata: not valid JSON"),
        ('[{"purpose": "sales"}]', "metadata: expected a JSON object, got array"),
        ('{"purpose": ["sales"], "agent_id": 7}', "agent_id: expected a string, got number"),
        ('{"user_details": "premium"}', "user_details: expected an object, got string"),
        (
            json.dumps({"purpose": "sales", "pad": "x" * MAX_METADATA_BYTES}),
            "metadata: 65567 bytes is over",
        ),
    ],
)
async def test_malformed_metadata_is_served_by_default(
    seeded: ConfigStore, metadata: str, warning: str
) -> None:
    router = Router(StaticRules(DEFAULT_RULES), StoreAvailability(seeded))
    decision = await route(router, metadata)
    assert (decision.agent_id, decision.strategy) == ("support-agent-v1", "default")
    assert decision.warnings and decision.warnings[0].startswith(warning)
    assert [e.outcome for e in decision.trail] == [
        "no_proposal",
        "no_proposal",
        "no_proposal",
        "chosen",
    ]


async def test_decision_serializes_to_json_and_back(seeded: ConfigStore) -> None:
    await seeded.set_status("sales-agent-v1", AgentStatus.PAUSED)
    router = Router(
        StaticRules(DEFAULT_RULES), StoreAvailability(seeded), clock=fixed_clock(MONDAY_NOON)
    )
    decision = await route(router, '{"purpose": "sales", "user_details": "x"}')
    as_json = json.loads(decision.model_dump_json())
    assert as_json == {
        "agent_id": "support-agent-v1",
        "strategy": "default",
        "trail": [
            {
                "strategy": "explicit",
                "agent_id": None,
                "outcome": "no_proposal",
                "reason": "metadata has no agent_id",
            },
            {
                "strategy": "purpose",
                "agent_id": "sales-agent-v1",
                "outcome": "skipped",
                "reason": "paused",
            },
            {
                "strategy": "user_attributes",
                "agent_id": None,
                "outcome": "no_proposal",
                "reason": "metadata has no user_details",
            },
            {
                "strategy": "default",
                "agent_id": "support-agent-v1",
                "outcome": "chosen",
                "reason": "the fallback agent type",
            },
        ],
        "warnings": ["user_details: expected an object, got string; ignored"],
        "rules_version": 0,
        "decided_at": "2025-01-06T12:00:00Z",
        "variables": {},
    }
    assert RoutingDecision.model_validate_json(decision.model_dump_json()) == decision
    assert decision.model_dump(mode="json") == as_json


async def test_disabled_entries_are_not_consulted() -> None:
    router = Router(
        rules(
            {"strategy": "purpose", "enabled": False},
            {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
        ),
        MemoryAvailability(builtin_configs()),
    )
    decision = await route(router, {"purpose": "sales"})
    assert trail_of(decision) == [
        ("default", "support-agent-v1", "chosen", "the fallback agent type")
    ]


async def test_time_window_in_the_chain_uses_the_router_clock() -> None:
    hours = {
        "strategy": "time_window",
        "params": {
            "windows": [
                {
                    "days": ["mon"],
                    "start": "09:00",
                    "end": "17:00",
                    "timezone": "America/New_York",
                    "agent_id": "sales-agent-v1",
                }
            ]
        },
    }
    chain = rules(hours, {"strategy": "default", "params": {"agent_id": "support-agent-v1"}})
    availability = MemoryAvailability(builtin_configs())
    open_in_new_york = Router(
        chain, availability, clock=fixed_clock(datetime(2025, 1, 6, 15, 0, tzinfo=UTC))
    )
    before_opening = Router(
        chain, availability, clock=fixed_clock(datetime(2025, 1, 6, 13, 59, tzinfo=UTC))
    )
    assert (await route(open_in_new_york, {})).agent_id == "sales-agent-v1"
    assert (await route(before_opening, {})).agent_id == "support-agent-v1"


async def test_one_agent_proposed_twice_is_checked_once() -> None:
    asked: list[str] = []

    class Counting(MemoryAvailability):
        async def unavailable_reason(self, agent_id: str) -> str | None:
            asked.append(agent_id)
            return await super().unavailable_reason(agent_id)

    paused = [c.model_copy(update={"status": "paused"}) for c in builtin_configs()]
    router = Router(StaticRules(DEFAULT_RULES), Counting(paused))
    decision = await route(router, {"purpose": "support", "user_details": {"tier": "premium"}})
    assert decision.agent_id is None and asked == ["support-agent-v1"]
    assert [e.reason for e in decision.trail if e.outcome == "skipped"] == ["paused"] * 3


class ExplodingParams(BaseModel):
    pass


class ExplodingStrategy:
    name: ClassVar[str] = "exploding"
    Params: ClassVar[type[BaseModel]] = ExplodingParams

    def __init__(self, params: ExplodingParams) -> None:
        self.params = params

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        raise KeyError("crm_id")

    def agent_ids(self) -> frozenset[str]:
        return frozenset()


async def test_a_strategy_that_raises_or_cannot_load_never_fails_the_room() -> None:
    registry = StrategyRegistry(
        [*BUILTIN_STRATEGIES, ExplodingStrategy], broken={"crm": "cannot load x"}
    )
    router = Router(
        rules(
            {"strategy": "exploding"},
            {"strategy": "crm"},
            {"strategy": "not_installed"},
            {"strategy": "purpose", "params": {"agents": "sales"}},
            {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
        ),
        MemoryAvailability(builtin_configs()),
        registry=registry,
    )
    decision = await route(router, {"purpose": "sales"})
    assert decision.agent_id == "support-agent-v1"
    errors = [(e.strategy, e.outcome, e.reason) for e in decision.trail[:4]]
    assert errors == [
        ("exploding", "error", "raised KeyError('crm_id')"),
        ("crm", "error", "routing strategy plugin 'crm' is broken: cannot load x"),
        ("not_installed", "error", errors[2][2]),
        ("purpose", "error", "invalid params: agents: Input should be a valid dictionary"),
    ]
    assert errors[2][2].startswith("unknown routing strategy 'not_installed'")
    assert "'switchboard.routing' entry-point group" in errors[2][2]
