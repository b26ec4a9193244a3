"""The routing rules: which strategies run, in which order, with which params.

They live in MongoDB (collection `routing_rules`), and every save moves the change stamp
that the catalog (agent_configs/catalog.py) reads, so an edit applies to the next room
without a restart. Every save is a new document `{version, chain, updated_at}`, unique on
`version`; the current rules are the highest version, and older ones stay as history.
Claiming version N+1 through that unique index is the commit point of a save, because
FerretDB v1 does not make a filtered replace atomic (see agent_configs/store.py): of two
writers based on version N exactly one files N+1, the other gets a RulesVersionConflict.

Each entry's `params` is stored as JSON text: MongoDB/FerretDB refuse '.' and '$' in keys,
and a user_attributes path such as `plan.tier` (or a custom strategy's params) may hold them.
Without a stored document the built-in DEFAULT_RULES apply, as version 0.
"""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from agent_configs.changes import ChangeStamp
from agent_configs.database import bson_now, database_errors
from agent_configs.errors import AgentNotFound
from agent_configs.routing.errors import (
    InvalidRoutingRules,
    RoutingError,
    RulesProblem,
    RulesVersionConflict,
)
from agent_configs.routing.registry import StrategyRegistry, default_registry
from agent_configs.routing.strategies import DEFAULT_PURPOSE_AGENTS
from agent_configs.store import ROUTING_RULES, ConfigStore


class ChainEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class RoutingRules(BaseModel):
    """The strategy chain. `version` and `updated_at` are owned by the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: list[ChainEntry] = Field(min_length=1, max_length=50)
    version: int = Field(default=0, ge=0)
    updated_at: datetime | None = None

    def definition(self) -> dict[str, Any]:
        """The user-authored part, as the admin API shows and accepts it."""
        return self.model_dump(mode="json", exclude={"version", "updated_at"})


DEFAULT_RULES = RoutingRules(
    chain=[
        # A frontend may name only these types: an agent type added later (an internal one,
        # a draft) cannot be forced by a client that learns its id, until it is listed here.
        ChainEntry(
            strategy="explicit",
            params={"allowed_agent_ids": sorted(DEFAULT_PURPOSE_AGENTS.values())},
        ),
        ChainEntry(strategy="purpose", params={"agents": dict(DEFAULT_PURPOSE_AGENTS)}),
        ChainEntry(
            strategy="user_attributes",
            params={
                "rules": [
                    {"when": {"is_new_user": True}, "agent_id": "onboarding-agent-v1"},
                    {"when": {"tier": "premium"}, "agent_id": "support-agent-v1"},
                ]
            },
        ),
        ChainEntry(strategy="ab_split", params={"salt": "", "variants": []}, enabled=False),
        ChainEntry(strategy="time_window", params={"windows": []}, enabled=False),
        ChainEntry(strategy="default", params={"agent_id": "support-agent-v1"}),
    ]
)


# -- validation -------------------------------------------------------------------------


def validate_rules(
    rules: RoutingRules | Mapping[str, Any], registry: StrategyRegistry | None = None
) -> RoutingRules:
    """The rules as a model, or InvalidRoutingRules listing every problem.

    Each problem names the chain index, the strategy and the field, e.g.
    `chain[2] (user_attributes) params.rules.0.when: tier: unknown operator 'gtee'`.
    Disabled entries are checked too, so enabling one later cannot break routing.
    """
    registry = registry or default_registry()
    if not isinstance(rules, RoutingRules):
        rules = _parse_document(rules)
    problems = [
        p
        for index, entry in enumerate(rules.chain)
        for p in _entry_problems(index, entry, registry)
    ]
    if problems:
        raise InvalidRoutingRules(problems)
    return rules


def _parse_document(data: Mapping[str, Any]) -> RoutingRules:
    try:
        return RoutingRules.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidRoutingRules(
            [_structural_problem(error, data) for error in exc.errors()]
        ) from exc


def _structural_problem(error: Any, data: Mapping[str, Any]) -> RulesProblem:
    loc = list(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "chain" and isinstance(loc[1], int):
        index = loc[1]
        return RulesProblem(
            _dotted(loc[2:]) or "(entry)", message, index, _strategy_named_at(data, index)
        )
    return RulesProblem(_dotted(loc) or "(rules)", message)


def _strategy_named_at(data: Mapping[str, Any], index: int) -> str | None:
    try:
        name = data["chain"][index]["strategy"]
    except (KeyError, IndexError, TypeError):
        return None
    return name if isinstance(name, str) else None


def _entry_problems(
    index: int, entry: ChainEntry, registry: StrategyRegistry
) -> list[RulesProblem]:
    try:
        registry.build(entry.strategy, entry.params)
    except RoutingError as exc:
        return [RulesProblem("strategy", str(exc), index, entry.strategy)]
    except ValidationError as exc:
        return [
            RulesProblem(
                _dotted(["params", *error["loc"]]),
                error["msg"].removeprefix("Value error, "),
                index,
                entry.strategy,
            )
            for error in exc.errors()
        ]
    return []


def _dotted(loc: list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def check_agent_ids(
    rules: RoutingRules, store: ConfigStore, registry: StrategyRegistry | None = None
) -> list[RulesProblem]:
    """Every agent_id the rules can propose must exist in the store (any status).

    Call after `validate_rules`; entries that do not build are left to that check.
    """
    registry = registry or default_registry()
    exists: dict[str, bool] = {}
    problems = []
    for index, entry in enumerate(rules.chain):
        try:
            agent_ids = registry.build(entry.strategy, entry.params).agent_ids()
        except (RoutingError, ValidationError):
            continue
        for agent_id in sorted(agent_ids):
            if agent_id not in exists:
                exists[agent_id] = await _agent_exists(store, agent_id)
            if not exists[agent_id]:
                missing = f"agent '{agent_id}' does not exist"
                problems.append(RulesProblem("params", missing, index, entry.strategy))
    return problems


async def _agent_exists(store: ConfigStore, agent_id: str) -> bool:
    try:
        await store.get(agent_id)
    except AgentNotFound:
        return False
    return True


# -- storage ----------------------------------------------------------------------------


def _to_document(rules: RoutingRules) -> dict[str, Any]:
    chain = [
        {
            "strategy": e.strategy,
            "enabled": e.enabled,
            "params_json": json.dumps(e.params, sort_keys=True),
        }
        for e in rules.chain
    ]
    return {"version": rules.version, "updated_at": rules.updated_at, "chain": chain}


def _from_document(document: Mapping[str, Any]) -> RoutingRules:
    try:
        chain = [
            ChainEntry(
                strategy=e["strategy"], enabled=e["enabled"], params=json.loads(e["params_json"])
            )
            for e in document["chain"]
        ]
        return RoutingRules(
            chain=chain, version=document["version"], updated_at=document["updated_at"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        version = document.get("version", "?")
        problem = RulesProblem("(document)", f"stored version {version} is unreadable: {exc!r}")
        raise InvalidRoutingRules([problem]) from exc


class RulesStore:
    def __init__(self, database: AsyncDatabase, registry: StrategyRegistry | None = None) -> None:
        self._rules = database[ROUTING_RULES]
        self._stamp = ChangeStamp(database)
        self._registry = registry
        self._indexed = False

    async def ensure_indexes(self) -> None:
        with database_errors():
            await self._rules.create_index([("version", DESCENDING)], unique=True)
        self._indexed = True

    async def current(self) -> RoutingRules:
        """The newest saved rules, or DEFAULT_RULES (version 0) when none were ever saved."""
        with database_errors():
            document = await self._rules.find_one({}, sort=[("version", DESCENDING)])
        return DEFAULT_RULES if document is None else _from_document(document)

    async def get_version(self, version: int) -> RoutingRules | None:
        if version == 0:
            return DEFAULT_RULES
        with database_errors():
            document = await self._rules.find_one({"version": version})
        return None if document is None else _from_document(document)

    async def save(
        self, rules: RoutingRules | Mapping[str, Any], expected_version: int
    ) -> RoutingRules:
        """Save as version `expected_version + 1`, if nobody saved since `expected_version`.

        Raises InvalidRoutingRules (nothing written) or RulesVersionConflict.
        """
        valid = validate_rules(rules, self._registry)
        if not self._indexed:
            await self.ensure_indexes()
        current = await self.current()
        if current.version != expected_version:
            raise RulesVersionConflict(expected_version, current.version)
        stored = valid.model_copy(
            update={"version": expected_version + 1, "updated_at": bson_now()}
        )
        try:
            with database_errors():
                await self._rules.insert_one(_to_document(stored) | {"write_id": uuid.uuid4().hex})
        except DuplicateKeyError:
            raise RulesVersionConflict(expected_version, (await self.current()).version) from None
        await self._stamp.bump()
        return stored


# -- what the router reads --------------------------------------------------------------


class RulesSource(Protocol):
    """The rules for the next decision: `agent_configs.catalog.Catalog` (stored rules, as
    current as the change stamp says) or `StaticRules`."""

    async def current(self) -> RoutingRules: ...


@dataclass(frozen=True)
class StaticRules:
    """Fixed rules: for previews of unsaved rules ("explain"), tests and benchmarks."""

    rules: RoutingRules

    async def current(self) -> RoutingRules:
        return self.rules
