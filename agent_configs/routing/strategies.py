"""The built-in routing strategies: explicit, purpose, user_attributes, ab_split, time_window, default,
and webhook (agent_configs/routing/webhook.py: the one that asks another system).

Each is a small class with a `Params` model (unknown keys refused, so a typo in the rules is
an error, not a silently ignored setting) and a pure `propose`.
"""

import hashlib
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_configs.models import Slug, repeated
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.strategy import Proposal
from agent_configs.routing.webhook import WebhookStrategy

AgentId = Slug


class StrategyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- explicit ---------------------------------------------------------------------------


class ExplicitParams(StrategyParams):
    allowed_agent_ids: list[AgentId] | None = Field(
        default=None,
        description="Agent types a frontend may pick by name; null allows any.",
    )


@dataclass(frozen=True)
class ExplicitStrategy:
    """The frontend named the agent type: `{"agent_id": "support-agent-v1"}`."""

    params: ExplicitParams
    name: ClassVar[str] = "explicit"
    Params: ClassVar[type[BaseModel]] = ExplicitParams

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        if context.agent_id is None:
            return Proposal.nothing("metadata has no agent_id")
        allowed = self.params.allowed_agent_ids
        if allowed is not None and context.agent_id not in allowed:
            return Proposal.nothing(f"agent_id '{context.agent_id}' may not be picked explicitly")
        return Proposal(context.agent_id, f"metadata names agent_id '{context.agent_id}'")

    def agent_ids(self) -> frozenset[str]:
        return frozenset(self.params.allowed_agent_ids or ())


# -- purpose ----------------------------------------------------------------------------

DEFAULT_PURPOSE_AGENTS = {
    "support": "support-agent-v1",
    "sales": "sales-agent-v1",
    "onboarding": "onboarding-agent-v1",
    "interview": "pte-interview-agent-v1",
}


class PurposeParams(StrategyParams):
    agents: dict[str, AgentId] = Field(
        default_factory=lambda: dict(DEFAULT_PURPOSE_AGENTS),
        description="purpose -> agent_id; purposes compare case-insensitively.",
    )

    @field_validator("agents")
    @classmethod
    def _purposes_lowercase(cls, agents: dict[str, str]) -> dict[str, str]:
        normalized = {purpose.strip().lower(): agent for purpose, agent in agents.items()}
        if len(normalized) != len(agents):
            raise ValueError("two purposes differ only in case or spaces")
        if "" in normalized:
            raise ValueError("a purpose cannot be empty")
        return normalized


@dataclass(frozen=True)
class PurposeStrategy:
    """`{"purpose": "sales"}` -> the agent type mapped to that purpose."""

    params: PurposeParams
    name: ClassVar[str] = "purpose"
    Params: ClassVar[type[BaseModel]] = PurposeParams

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        if context.purpose is None:
            return Proposal.nothing("metadata has no purpose")
        agent_id = self.params.agents.get(context.purpose.lower())
        if agent_id is None:
            return Proposal.nothing(f"no agent type for purpose '{context.purpose}'")
        return Proposal(agent_id, f"purpose '{context.purpose}' maps to {agent_id}")

    def agent_ids(self) -> frozenset[str]:
        return frozenset(self.params.agents.values())


# -- user_attributes --------------------------------------------------------------------

OPERATORS: tuple[str, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_MISSING = object()


def _value_kind(value: object) -> str:
    """Values only compare within a kind: `true` never equals `1`, `"3"` never exceeds `2`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _is_scalar(value: object) -> bool:
    return _value_kind(value) != "other"


@dataclass(frozen=True)
class Condition:
    path: str
    op: str
    expected: Any

    def holds_for(self, details: dict[str, Any]) -> bool:
        actual = _lookup(details, self.path)
        if actual is _MISSING:
            return False
        if self.op == "in":
            return any(_same(actual, option) for option in self.expected)
        if _value_kind(actual) != _value_kind(self.expected):
            return False
        if self.op == "eq":
            return bool(actual == self.expected)
        if self.op == "ne":
            return bool(actual != self.expected)
        if _value_kind(actual) not in ("number", "string"):
            return False
        return _ORDERINGS[self.op](actual, self.expected)

    def __str__(self) -> str:
        return f"{self.path} {self.op} {json.dumps(self.expected)}"


def _same(actual: object, expected: object) -> bool:
    return _value_kind(actual) == _value_kind(expected) and actual == expected


def _lookup(details: dict[str, Any], path: str) -> Any:
    """`tier` or a dotted path into nested objects such as `plan.tier`."""
    if path in details:
        return details[path]
    value: Any = details
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _operators(spec: Any) -> dict[str, Any]:
    """`{tier: premium}` is shorthand for `{tier: {eq: premium}}`; an object lists operators."""
    return dict(spec) if isinstance(spec, dict) else {"eq": spec}


def _valid_condition_spec(spec: Any) -> Any:
    operators = _operators(spec)
    if not operators:
        raise ValueError("give a value or at least one operator")
    for op, expected in operators.items():
        _check_operand(op, expected)
    return spec


def _check_operand(op: str, expected: Any) -> None:
    if op not in OPERATORS:
        raise ValueError(f"unknown operator '{op}'; use one of {', '.join(OPERATORS)}")
    if op == "in":
        if not isinstance(expected, list) or not all(_is_scalar(v) for v in expected):
            raise ValueError("`in` needs a list of strings, numbers, booleans or null")
    elif not _is_scalar(expected):
        raise ValueError(f"`{op}` needs a string, number, boolean or null")
    elif op in _ORDERINGS and _value_kind(expected) not in ("number", "string"):
        raise ValueError(f"`{op}` compares numbers or strings, not {json.dumps(expected)}")


ConditionSpec = Annotated[Any, AfterValidator(_valid_condition_spec)]


class AttributeRule(StrategyParams):
    """All conditions in `when` must hold (AND); the first matching rule wins."""

    when: dict[str, ConditionSpec] = Field(min_length=1)
    agent_id: AgentId

    @cached_property
    def conditions(self) -> tuple[Condition, ...]:
        return tuple(
            Condition(path, op, tuple(expected) if op == "in" else expected)
            for path, spec in self.when.items()
            for op, expected in _operators(spec).items()
        )

    def matches(self, details: dict[str, Any]) -> bool:
        return all(condition.holds_for(details) for condition in self.conditions)


class UserAttributesParams(StrategyParams):
    rules: list[AttributeRule] = Field(default_factory=list, max_length=200)


@dataclass(frozen=True)
class UserAttributesStrategy:
    """Ordered rules on `user_details`, e.g. `is_new_user == true -> onboarding-agent-v1`.

    A missing field or a value of another type simply does not match; nothing raises.
    """

    params: UserAttributesParams
    name: ClassVar[str] = "user_attributes"
    Params: ClassVar[type[BaseModel]] = UserAttributesParams

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        if not context.user_details:
            return Proposal.nothing("metadata has no user_details")
        for index, rule in enumerate(self.params.rules):
            if rule.matches(context.user_details):
                described = " and ".join(str(c) for c in rule.conditions)
                return Proposal(rule.agent_id, f"rule {index} matches: {described}")
        return Proposal.nothing(f"none of {len(self.params.rules)} rules matches user_details")

    def agent_ids(self) -> frozenset[str]:
        return frozenset(rule.agent_id for rule in self.params.rules)


# -- ab_split ---------------------------------------------------------------------------


class Variant(StrategyParams):
    agent_id: AgentId
    weight: float = Field(default=1.0, gt=0, le=1_000_000)


class ABSplitParams(StrategyParams):
    salt: str = Field(default="", max_length=200, description="Change it to reshuffle users.")
    variants: list[Variant] = Field(default_factory=list, max_length=50)

    @field_validator("variants")
    @classmethod
    def _one_variant_per_agent(cls, variants: list[Variant]) -> list[Variant]:
        duplicates = repeated([v.agent_id for v in variants])
        if duplicates:
            raise ValueError(f"agent types listed twice: {', '.join(duplicates)}")
        return variants


def user_bucket(user_id: str, salt: str) -> float:
    """A stable point in [0, 1) for a user: sha256, so it is the same in every process.

    (Python's `hash()` of a string changes with each interpreter start.)
    """
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class ABSplitStrategy:
    """Weighted variants by a consistent hash of user_id: the same user always gets the same one.

    If that variant is unavailable the chain goes on; the user is not moved to another
    variant, which would spoil the experiment.
    """

    params: ABSplitParams
    name: ClassVar[str] = "ab_split"
    Params: ClassVar[type[BaseModel]] = ABSplitParams

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        variants = self.params.variants
        if not variants:
            return Proposal.nothing("no variants configured")
        if context.user_id is None:
            return Proposal.nothing("metadata has no user_id to split on")
        total = sum(v.weight for v in variants)
        bucket = user_bucket(context.user_id, self.params.salt)
        point = bucket * total
        for variant in variants:
            if point < variant.weight:
                break
            point -= variant.weight
        share = f"weight {variant.weight:g} of {total:g}"
        return Proposal(
            variant.agent_id, f"user bucket {bucket:.4f} falls in {variant.agent_id} ({share})"
        )

    def agent_ids(self) -> frozenset[str]:
        return frozenset(v.agent_id for v in self.params.variants)


# -- time_window ------------------------------------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(hhmm: str) -> int:
    return 24 * 60 if hhmm == "24:00" else int(hhmm[:2]) * 60 + int(hhmm[3:])


def _clock_time(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"'{value}' is not a time of day as HH:MM (00:00 to 23:59), e.g. 09:00")
    return value


def _end_time(value: str) -> str:
    return value if value == "24:00" else _clock_time(value)


class TimeWindow(StrategyParams):
    """`start`-`end` local time on `days`; `end` before `start` runs past midnight."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: Annotated[str, AfterValidator(_clock_time)]
    end: Annotated[str, AfterValidator(_end_time)] = Field(
        description="HH:MM, or 24:00 for midnight"
    )
    timezone: str = "UTC"
    agent_id: AgentId

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone '{name}' (e.g. Europe/Paris)") from None
        return name

    @model_validator(mode="after")
    def _not_empty(self) -> "TimeWindow":
        if _minutes(self.start) == _minutes(self.end):
            raise ValueError("start and end are the same time: the window would be empty")
        return self

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        day = WEEKDAYS[local.weekday()]
        previous_day = WEEKDAYS[local.weekday() - 1]
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        if start < end:
            return day in self.days and start <= minute < end
        return (day in self.days and minute >= start) or (
            previous_day in self.days and minute < end
        )

    def __str__(self) -> str:
        return f"{','.join(self.days)} {self.start}-{self.end} {self.timezone}"


class TimeWindowParams(StrategyParams):
    windows: list[TimeWindow] = Field(default_factory=list, max_length=100)
    otherwise_agent_id: AgentId | None = Field(
        default=None, description="Proposed outside every window; null lets the chain go on."
    )


@dataclass(frozen=True)
class TimeWindowStrategy:
    """Business hours per IANA timezone: the first window containing the current time wins."""

    params: TimeWindowParams
    name: ClassVar[str] = "time_window"
    Params: ClassVar[type[BaseModel]] = TimeWindowParams

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        for index, window in enumerate(self.params.windows):
            if window.contains(now):
                local = now.astimezone(ZoneInfo(window.timezone)).strftime("%a %H:%M")
                return Proposal(window.agent_id, f"{local} is inside window {index} ({window})")
        outside = f"{now.astimezone(UTC):%a %H:%M} UTC is outside every window"
        if not self.params.windows:
            outside = "no windows configured"
        if self.params.otherwise_agent_id is not None:
            return Proposal(self.params.otherwise_agent_id, outside)
        return Proposal.nothing(outside)

    def agent_ids(self) -> frozenset[str]:
        ids = {w.agent_id for w in self.params.windows}
        if self.params.otherwise_agent_id is not None:
            ids.add(self.params.otherwise_agent_id)
        return frozenset(ids)


# -- default ----------------------------------------------------------------------------


class DefaultParams(StrategyParams):
    agent_id: AgentId


@dataclass(frozen=True)
class DefaultStrategy:
    """The fallback: always proposes the same agent type. Put it last."""

    params: DefaultParams
    name: ClassVar[str] = "default"
    Params: ClassVar[type[BaseModel]] = DefaultParams

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        return Proposal(self.params.agent_id, "the fallback agent type")

    def agent_ids(self) -> frozenset[str]:
        return frozenset({self.params.agent_id})


BUILTIN_STRATEGIES: tuple[type[Any], ...] = (
    ExplicitStrategy,
    PurposeStrategy,
    UserAttributesStrategy,
    ABSplitStrategy,
    TimeWindowStrategy,
    WebhookStrategy,
    DefaultStrategy,
)
