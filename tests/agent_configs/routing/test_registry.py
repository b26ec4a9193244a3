"""Custom strategies through real `switchboard.routing` entry points of an installed distribution.

The fixture writes a tiny package and its `*.dist-info` (METADATA + entry_points.txt) into a
temporary directory on sys.path: exactly what pip leaves behind, found by importlib.metadata.
"""

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_configs.routing import (
    DEFAULT_RULES,
    ENTRY_POINT_GROUP,
    InvalidRoutingRules,
    MemoryAvailability,
    Router,
    RoutingContext,
    RoutingRules,
    StaticRules,
    StrategyLoadError,
    StrategyRegistry,
    UnknownStrategy,
    validate_rules,
)
from tests.agent_configs.routing.helpers import builtin_configs

PLUGIN_MODULE = "switchboard_vip_routing"

PLUGIN_SOURCE = '''
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from agent_configs.routing import Proposal, RoutingContext


class VipParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str
    min_spend: float


class VipDeskStrategy:
    """Big spenders go to a dedicated desk."""

    name: ClassVar[str] = "vip_desk"
    Params: ClassVar[type[BaseModel]] = VipParams

    def __init__(self, params: VipParams) -> None:
        self.params = params

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        spend = context.user_details.get("lifetime_spend")
        if isinstance(spend, int | float) and spend >= self.params.min_spend:
            return Proposal(self.params.agent_id, f"lifetime_spend {spend} >= {self.params.min_spend}")
        return Proposal.nothing("not a VIP")

    def agent_ids(self) -> frozenset[str]:
        return frozenset({self.params.agent_id})


NOT_A_CLASS = 42
'''

ENTRY_POINTS = f"""
[{ENTRY_POINT_GROUP}]
vip_desk = {PLUGIN_MODULE}:VipDeskStrategy
crm_lookup = switchboard_crm_missing.routing:CrmStrategy
misnamed = {PLUGIN_MODULE}:VipDeskStrategy
constant = {PLUGIN_MODULE}:NOT_A_CLASS
purpose = {PLUGIN_MODULE}:VipDeskStrategy
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist_info = tmp_path / "switchboard_vip_routing-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: switchboard-vip-routing\nVersion: 0.1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop(PLUGIN_MODULE, None)


VIP_CHAIN = {
    "chain": [
        {"strategy": "vip_desk", "params": {"agent_id": "sales-agent-v1", "min_spend": 10_000}},
        {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
    ]
}


def test_without_plugins_only_builtins_are_known() -> None:
    registry = StrategyRegistry.with_plugins()
    assert registry.names() == [
        "ab_split",
        "default",
        "explicit",
        "purpose",
        "time_window",
        "user_attributes",
        "webhook",
    ]
    assert registry.plugin_errors == {}
    with pytest.raises(UnknownStrategy, match="unknown routing strategy 'vip_desk'"):
        registry.get("vip_desk")


async def test_installed_custom_strategy_routes_by_name(installed_plugin: Path) -> None:
    registry = StrategyRegistry.with_plugins()
    assert "vip_desk" in registry.names()
    rules = validate_rules(VIP_CHAIN, registry)
    router = Router(StaticRules(rules), MemoryAvailability(builtin_configs()), registry=registry)

    vip = await router.route(
        RoutingContext.from_metadata({"user_details": {"lifetime_spend": 25_000}})
    )
    assert (vip.agent_id, vip.strategy) == ("sales-agent-v1", "vip_desk")
    assert vip.trail[0].reason == "lifetime_spend 25000 >= 10000.0"
    regular = await router.route(
        RoutingContext.from_metadata({"user_details": {"lifetime_spend": 50}})
    )
    assert (regular.agent_id, regular.trail[0].reason) == ("support-agent-v1", "not a VIP")


def test_custom_params_are_validated_like_builtin_ones(installed_plugin: Path) -> None:
    registry = StrategyRegistry.with_plugins()
    bad = {
        "chain": [
            {"strategy": "vip_desk", "params": {"agent_id": "sales-agent-v1", "min_spend": "lots"}}
        ]
    }
    with pytest.raises(
        InvalidRoutingRules,
        match=r"chain\[0\] \(vip_desk\) params.min_spend: Input should be a valid number",
    ):
        validate_rules(bad, registry)


def test_broken_plugins_are_named_with_what_is_wrong(installed_plugin: Path) -> None:
    registry = StrategyRegistry.with_plugins()
    errors = registry.plugin_errors
    assert set(errors) == {"crm_lookup", "misnamed", "constant", "purpose"}
    assert (
        "ModuleNotFoundError" in errors["crm_lookup"]
        and "switchboard_crm_missing" in errors["crm_lookup"]
    )
    assert "it must equal the entry-point name 'misnamed'" in errors["misnamed"]
    assert "is a int, not a strategy class" in errors["constant"]
    assert "reuses the name of the built-in strategy PurposeStrategy" in errors["purpose"]
    assert registry.get("purpose").__name__ == "PurposeStrategy", (
        "a plugin cannot replace a built-in"
    )
    with pytest.raises(
        StrategyLoadError, match="routing strategy plugin 'crm_lookup' is broken: cannot load"
    ):
        registry.get("crm_lookup")


def test_rules_naming_a_broken_plugin_are_refused(installed_plugin: Path) -> None:
    registry = StrategyRegistry.with_plugins()
    with pytest.raises(InvalidRoutingRules) as caught:
        validate_rules({"chain": [{"strategy": "crm_lookup"}, *VIP_CHAIN["chain"]]}, registry)
    (problem,) = caught.value.problems
    assert (problem.index, problem.strategy, problem.field) == (0, "crm_lookup", "strategy")
    assert "plugin 'crm_lookup' is broken" in problem.message


async def test_a_plugin_gone_at_route_time_is_a_trail_error_not_a_crash(
    installed_plugin: Path,
) -> None:
    rules = validate_rules(VIP_CHAIN, StrategyRegistry.with_plugins())
    without_plugin = StrategyRegistry()  # the worker image no longer ships the package
    router = Router(
        StaticRules(rules), MemoryAvailability(builtin_configs()), registry=without_plugin
    )
    decision = await router.route(
        RoutingContext.from_metadata({"user_details": {"lifetime_spend": 25_000}})
    )
    assert decision.agent_id == "support-agent-v1"
    first = decision.trail[0]
    assert (first.strategy, first.outcome) == ("vip_desk", "error")
    assert first.reason.startswith("unknown routing strategy 'vip_desk'")


def test_defaults_do_not_depend_on_plugins(installed_plugin: Path) -> None:
    assert isinstance(validate_rules(DEFAULT_RULES, StrategyRegistry.with_plugins()), RoutingRules)
