"""The one shape every routing strategy has, built-in or plugged in.

A strategy is built once from its validated `Params` and then asked, for each room, which
agent type it would pick. It only proposes: whether the agent can take the session is the
router's question (see availability.py). `propose` gets everything it may use as arguments,
including the time, so a decision can be replayed and explained.

`propose` is synchronous and does no I/O, except in a strategy whose very job is to ask
another system (the `webhook` strategy): that one defines it as a coroutine, the router
awaits it, and it bounds its own time. The others cost no more for it: the router calls them
directly and only awaits what is awaitable.
"""

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from agent_configs.routing.context import RoutingContext


@dataclass(frozen=True, slots=True)
class Proposal:
    """An agent type a strategy would pick (or None), and why, in words for the trail.

    `variables` go with the decision when this proposal is chosen: values the session's
    instructions and greeting can use (`{{variables.plan}}`, agent_configs/templates.py)."""

    agent_id: str | None
    reason: str
    variables: Mapping[str, Any] | None = None

    @classmethod
    def nothing(cls, reason: str) -> "Proposal":
        return cls(None, reason)


@runtime_checkable
class RoutingStrategy(Protocol):
    """`name` is how rules refer to it; `Params` validates its `params` in the rules."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel) -> None: ...

    def propose(self, context: RoutingContext, now: datetime) -> Proposal | Awaitable[Proposal]:
        """The agent type for this room, or `Proposal.nothing(reason)`. No I/O, unless the
        strategy exists to ask another system: then it is `async` and bounds its own time."""
        ...

    def agent_ids(self) -> frozenset[str]:
        """Every agent_id the params can propose, so rules can be checked against the store."""
        ...
