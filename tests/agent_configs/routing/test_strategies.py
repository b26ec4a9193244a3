"""Each built-in strategy on its own: what it proposes for a room, and why."""

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from agent_configs.routing import DEFAULT_RULES, Proposal, RoutingContext, StrategyRegistry
from agent_configs.routing.strategies import user_bucket
from agent_configs.routing.strategy import RoutingStrategy

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # a Monday
registry = StrategyRegistry()


def build(name: str, **params: Any) -> RoutingStrategy:
    return registry.build(name, params)


def default_params(name: str) -> dict[str, Any]:
    return next(e.params for e in DEFAULT_RULES.chain if e.strategy == name)


def propose(strategy: RoutingStrategy, now: datetime = NOW, **metadata: Any) -> Proposal:
    proposal = strategy.propose(RoutingContext.from_metadata(metadata), now)
    assert isinstance(proposal, Proposal), "a strategy that answers at once"
    return proposal


def test_every_builtin_has_the_strategy_shape() -> None:
    assert registry.names() == [
        "ab_split",
        "default",
        "explicit",
        "purpose",
        "time_window",
        "user_attributes",
        "webhook",
    ]
    for name in registry.names():
        params = {"url": "http://127.0.0.1:1/route"} if name == "webhook" else default_params(name)
        assert isinstance(build(name, **params), RoutingStrategy)


# -- explicit ---------------------------------------------------------------------------


def test_explicit_proposes_the_agent_the_metadata_names() -> None:
    explicit = build("explicit")
    assert propose(explicit, agent_id="sales-agent-v1") == Proposal(
        "sales-agent-v1", "metadata names agent_id 'sales-agent-v1'"
    )
    assert propose(explicit, purpose="sales") == Proposal(None, "metadata has no agent_id")


def test_explicit_can_be_limited_to_agents_frontends_may_pick() -> None:
    explicit = build("explicit", allowed_agent_ids=["sales-agent-v1"])
    assert propose(explicit, agent_id="sales-agent-v1").agent_id == "sales-agent-v1"
    refused = propose(explicit, agent_id="internal-agent")
    assert refused == Proposal(None, "agent_id 'internal-agent' may not be picked explicitly")


# -- purpose ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "agent_id"),
    [
        ("support", "support-agent-v1"),
        ("sales", "sales-agent-v1"),
        ("onboarding", "onboarding-agent-v1"),
        ("interview", "pte-interview-agent-v1"),
        ("SALES", "sales-agent-v1"),
    ],
)
def test_purpose_defaults_map_the_four_builtins(purpose: str, agent_id: str) -> None:
    assert build("purpose").propose(RoutingContext(purpose=purpose), NOW).agent_id == agent_id
    assert (
        propose(build("purpose", **default_params("purpose")), purpose=purpose).agent_id == agent_id
    )


def test_purpose_without_a_mapping_proposes_nothing() -> None:
    purpose = build("purpose", agents={"Billing": "support-agent-v1"})
    assert propose(purpose, purpose="billing").agent_id == "support-agent-v1"
    assert propose(purpose, purpose="sales") == Proposal(None, "no agent type for purpose 'sales'")
    assert propose(purpose) == Proposal(None, "metadata has no purpose")


# -- user_attributes --------------------------------------------------------------------


def test_default_user_rules_send_new_users_to_onboarding_and_premium_to_support() -> None:
    rules = build("user_attributes", **default_params("user_attributes"))
    assert propose(rules, user_details={"is_new_user": True}).agent_id == "onboarding-agent-v1"
    assert propose(rules, user_details={"tier": "premium"}).agent_id == "support-agent-v1"
    first_wins = propose(rules, user_details={"tier": "premium", "is_new_user": True})
    assert first_wins == Proposal("onboarding-agent-v1", "rule 0 matches: is_new_user eq true")
    assert propose(rules, user_details={"tier": "free"}) == Proposal(
        None, "none of 2 rules matches user_details"
    )
    assert propose(rules) == Proposal(None, "metadata has no user_details")


@pytest.mark.parametrize(
    ("when", "details", "matches"),
    [
        ({"tier": {"ne": "free"}}, {"tier": "gold"}, True),
        ({"tier": {"ne": "free"}}, {"tier": "free"}, False),
        ({"age": {"gt": 17}}, {"age": 18}, True),
        ({"age": {"gt": 18}}, {"age": 18}, False),
        ({"age": {"gte": 18, "lt": 65}}, {"age": 18}, True),
        ({"age": {"gte": 18, "lt": 65}}, {"age": 65}, False),
        ({"age": {"lte": 17.5}}, {"age": 17.5}, True),
        ({"since": {"lt": "2024-06-01"}}, {"since": "2024-01-15"}, True),
        ({"country": {"in": ["US", "CA"]}}, {"country": "CA"}, True),
        ({"country": {"in": ["US", "CA"]}}, {"country": "FR"}, False),
        ({"plan.tier": "premium"}, {"plan": {"tier": "premium"}}, True),
        ({"plan.tier": "premium"}, {"plan": "premium"}, False),
        (
            {"tier": "premium", "is_new_user": False},
            {"tier": "premium", "is_new_user": False},
            True,
        ),
        ({"tier": "premium", "is_new_user": False}, {"tier": "premium"}, False),
        ({"referrer": None}, {"referrer": None}, True),
        ({"referrer": None}, {}, False),
    ],
)
def test_user_attribute_operators(
    when: dict[str, Any], details: dict[str, Any], matches: bool
) -> None:
    strategy = build("user_attributes", rules=[{"when": when, "agent_id": "sales-agent-v1"}])
    assert (propose(strategy, user_details=details).agent_id == "sales-agent-v1") is matches


@pytest.mark.parametrize(
    ("when", "details"),
    [
        ({"is_new_user": True}, {"is_new_user": "true"}),
        ({"is_new_user": True}, {"is_new_user": 1}),
        ({"count": 1}, {"count": True}),
        ({"age": {"gte": 18}}, {"age": "30"}),
        ({"age": {"gte": 18}}, {"age": True}),
        ({"age": {"gte": 18}}, {"age": None}),
        ({"age": {"gte": 18}}, {"age": [30]}),
        ({"tier": {"ne": "free"}}, {"tier": 3}),
        ({"tier": {"ne": "free"}}, {}),
        ({"country": {"in": ["1", "2"]}}, {"country": 1}),
        ({"tier": "premium"}, {"tier": {"name": "premium"}}),
    ],
)
def test_type_mismatches_and_missing_fields_do_not_match(
    when: dict[str, Any], details: dict[str, Any]
) -> None:
    strategy = build("user_attributes", rules=[{"when": when, "agent_id": "sales-agent-v1"}])
    assert propose(strategy, user_details=details).agent_id is None


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"tier": {"gtee": 1}}, "unknown operator 'gtee'"),
        ({"tier": {"in": "premium"}}, "`in` needs a list"),
        ({"tier": {"gt": True}}, "`gt` compares numbers or strings"),
        ({"tier": {}}, "give a value or at least one operator"),
        ({"tier": ["premium"]}, "`eq` needs a string, number, boolean or null"),
    ],
)
def test_bad_user_rules_are_refused_with_the_field(when: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build("user_attributes", rules=[{"when": when, "agent_id": "sales-agent-v1"}])
    (error,) = caught.value.errors()
    assert error["loc"] == ("rules", 0, "when", "tier") and message in error["msg"]


# -- ab_split ---------------------------------------------------------------------------

SPLIT = {
    "salt": "exp-7",
    "variants": [
        {"agent_id": "sales-agent-v1", "weight": 80},
        {"agent_id": "sales-agent-v2", "weight": 20},
    ],
}


def test_ab_split_bucket_is_pinned_so_running_experiments_never_reshuffle() -> None:
    # sha256("<salt>\x00<user_id>"), first 8 bytes. Python's hash() would change with every
    # interpreter start; a change of this formula would move users between variants.
    assert user_bucket("u-1", "") == int("a7f9d784423f7781", 16) / 2**64
    assert user_bucket("u-1", "") != user_bucket("u-1", "other-salt")


def test_ab_split_gives_the_same_user_the_same_variant() -> None:
    users = [f"user-{n}" for n in range(200)]
    first = [propose(build("ab_split", **SPLIT), user_id=u).agent_id for u in users]
    again = [propose(build("ab_split", **SPLIT), user_id=u).agent_id for u in users]
    assert first == again
    assert set(first) == {"sales-agent-v1", "sales-agent-v2"}


def test_ab_split_follows_the_weights_over_2000_users() -> None:
    split = build("ab_split", **SPLIT)
    counts = Counter(propose(split, user_id=f"user-{n}").agent_id for n in range(2000))
    assert 0.76 <= counts["sales-agent-v1"] / 2000 <= 0.84
    assert counts["sales-agent-v1"] + counts["sales-agent-v2"] == 2000


def test_changing_the_salt_reshuffles_users() -> None:
    resalted = build("ab_split", **(SPLIT | {"salt": "exp-8"}))
    split = build("ab_split", **SPLIT)
    moved = sum(
        propose(split, user_id=f"user-{n}").agent_id
        != propose(resalted, user_id=f"user-{n}").agent_id
        for n in range(500)
    )
    assert 50 < moved < 250  # 2 * 0.8 * 0.2 = 32% expected


def test_ab_split_without_user_id_or_variants_proposes_nothing() -> None:
    assert propose(build("ab_split", **SPLIT)) == Proposal(
        None, "metadata has no user_id to split on"
    )
    assert propose(build("ab_split"), user_id="u-1") == Proposal(None, "no variants configured")


def test_ab_split_reason_tells_the_bucket_and_weight() -> None:
    reason = propose(build("ab_split", **SPLIT), user_id="user-1").reason
    assert reason.startswith("user bucket 0.") and "of 100" in reason


def test_ab_split_refuses_duplicate_variants_and_zero_weights() -> None:
    with pytest.raises(ValidationError, match="agent types listed twice: sales-agent-v1"):
        build("ab_split", variants=[{"agent_id": "sales-agent-v1"}, {"agent_id": "sales-agent-v1"}])
    with pytest.raises(ValidationError, match="greater than 0"):
        build("ab_split", variants=[{"agent_id": "sales-agent-v1", "weight": 0}])


# -- time_window ------------------------------------------------------------------------

PARIS_HOURS = {
    "windows": [
        {
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "start": "09:00",
            "end": "17:00",
            "timezone": "Europe/Paris",
            "agent_id": "support-agent-v1",
        },
    ],
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (utc(2025, 1, 6, 7, 59), False),  # Monday 08:59 in Paris (CET, UTC+1)
        (utc(2025, 1, 6, 8, 0), True),  # Monday 09:00 in Paris
        (utc(2025, 1, 6, 15, 59), True),  # 16:59
        (utc(2025, 1, 6, 16, 0), False),  # 17:00: end is exclusive
        (utc(2025, 7, 7, 7, 30), True),  # Monday 09:30 in Paris (CEST, UTC+2)
        (utc(2025, 7, 7, 15, 30), False),  # 17:30 in summer, though 16:30 in winter
        (utc(2025, 1, 4, 10, 0), False),  # Saturday
        (utc(2025, 1, 5, 23, 30), False),  # Sunday 23:30 UTC is Monday 00:30 in Paris
    ],
)
def test_time_window_reads_the_clock_in_the_window_timezone(moment: datetime, inside: bool) -> None:
    proposal = build("time_window", **PARIS_HOURS).propose(RoutingContext(), moment)
    assert (proposal.agent_id == "support-agent-v1") is inside


def test_same_instant_is_inside_in_one_timezone_and_outside_in_another() -> None:
    moment = utc(2025, 1, 6, 9, 0)  # 10:00 Paris, 04:00 New York
    new_york = {"windows": [PARIS_HOURS["windows"][0] | {"timezone": "America/New_York"}]}
    assert (
        build("time_window", **PARIS_HOURS).propose(RoutingContext(), moment).agent_id
        == "support-agent-v1"
    )
    outside = build("time_window", **new_york).propose(RoutingContext(), moment)
    assert outside == Proposal(None, "Mon 09:00 UTC is outside every window")


def test_inside_reason_shows_local_time_and_window() -> None:
    proposal = build("time_window", **PARIS_HOURS).propose(RoutingContext(), utc(2025, 1, 6, 8, 30))
    assert (
        proposal.reason
        == "Mon 09:30 is inside window 0 (mon,tue,wed,thu,fri 09:00-17:00 Europe/Paris)"
    )


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    night = build(
        "time_window",
        windows=[
            {
                "days": ["fri"],
                "start": "22:00",
                "end": "06:00",
                "timezone": "Asia/Tokyo",
                "agent_id": "sales-agent-v1",
            },
        ],
    )
    friday_23 = utc(2025, 1, 10, 14, 0)  # Fri 23:00 Tokyo
    saturday_05 = utc(2025, 1, 10, 20, 0)  # Sat 05:00 Tokyo
    saturday_23 = utc(2025, 1, 11, 14, 0)  # Sat 23:00 Tokyo
    thursday_03 = utc(2025, 1, 8, 18, 0)  # Thu 03:00 Tokyo
    results = [
        night.propose(RoutingContext(), t).agent_id
        for t in (friday_23, saturday_05, saturday_23, thursday_03)
    ]
    assert results == ["sales-agent-v1", "sales-agent-v1", None, None]


def test_outside_hours_agent_is_proposed_when_configured() -> None:
    hours = build("time_window", **PARIS_HOURS, otherwise_agent_id="onboarding-agent-v1")
    assert hours.propose(RoutingContext(), utc(2025, 1, 4, 10, 0)).agent_id == "onboarding-agent-v1"
    assert hours.agent_ids() == {"support-agent-v1", "onboarding-agent-v1"}


def test_time_window_without_windows_proposes_nothing() -> None:
    assert build("time_window").propose(RoutingContext(), NOW) == Proposal(
        None, "no windows configured"
    )


@pytest.mark.parametrize(
    ("window", "loc", "message"),
    [
        (
            {"timezone": "Europe/Pariss"},
            ("windows", 0, "timezone"),
            "unknown IANA timezone 'Europe/Pariss'",
        ),
        ({"start": "9:00"}, ("windows", 0, "start"), "'9:00' is not a time of day as HH:MM"),
        ({"end": "25:00"}, ("windows", 0, "end"), "'25:00' is not a time of day"),
        ({"days": ["monday"]}, ("windows", 0, "days", 0), "Input should be 'mon'"),
        ({"end": "09:00"}, ("windows", 0), "start and end are the same time"),
    ],
)
def test_bad_windows_are_refused_with_the_field(
    window: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        build("time_window", windows=[PARIS_HOURS["windows"][0] | window])
    (error,) = caught.value.errors()
    assert error["loc"] == loc and message in error["msg"]


# -- default ----------------------------------------------------------------------------


def test_default_always_proposes_its_agent() -> None:
    fallback = build("default", agent_id="support-agent-v1")
    assert propose(fallback, purpose="sales", user_id="u-1") == Proposal(
        "support-agent-v1", "the fallback agent type"
    )
    assert fallback.agent_ids() == {"support-agent-v1"}


def test_params_typos_are_refused_not_ignored() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        build("purpose", agent={"sales": "sales-agent-v1"})
    with pytest.raises(ValidationError, match="agent_id"):
        build("default")
