"""The one shape every routing strategy has, built-in or plugged in.

A strategy is built once from its validated `Params` and then asked, for each room, which
agent type it would pick. It only proposes: whether the agent can take the session is the
router's question (see availability.py). `propose` is synchronous and gets everything it
may use as arguments, including the time, so a decision can be replayed and explained.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from agent_configs.routing.context import RoutingContext


@dataclass(frozen=True, slots=True)
class Proposal:
    """An agent type a strategy would pick (or None), and why, in words for the trail."""

    agent_id: str | None
    reason: str

    @classmethod
    def nothing(cls, reason: str) -> "Proposal":
        return cls(None, reason)


@runtime_checkable
class RoutingStrategy(Protocol):
    """`name` is how rules refer to it; `Params` validates its `params` in the rules."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel) -> None: ...

    def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        """The agent type for this room, or `Proposal.nothing(reason)`. Must not do I/O."""
        ...

    def agent_ids(self) -> frozenset[str]:
        """Every agent_id the params can propose, so rules can be checked against the store."""
        ...
