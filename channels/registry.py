"""The channel kinds the service can run: each registers a factory (and its HTTP routes, if it
takes requests), so adding a kind never edits the service.

A factory makes the runner of one binding: `start()` begins its work (a polling loop, a queue
consumer), `stop()` ends it; both are called by the service as bindings appear, change or go.
Routes are mounted once, for the whole kind, and find a binding's runner through `Runners`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import ChannelBinding, ChannelKind
from agent_configs.egress import EgressPolicy
from channels.hub import Hub


class ChannelRunner(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ChannelContext:
    """What every runner may use besides its binding and the hub."""

    database: AsyncDatabase
    egress: EgressPolicy


class Runners(Protocol):
    def get(self, binding_id: str) -> tuple[ChannelBinding, ChannelRunner] | None: ...

    @property
    def stopping(self) -> bool:
        """The service is shutting down: its runners are stopped or stopping (a route answers
        503, to be retried elsewhere, rather than a 404)."""
        ...

    @property
    def hub(self) -> Hub: ...

    @property
    def context(self) -> ChannelContext: ...


Factory = Callable[[ChannelBinding, Hub, ChannelContext], ChannelRunner]
RoutesFactory = Callable[[Runners], APIRouter]


@dataclass(frozen=True)
class ChannelType:
    kind: ChannelKind
    factory: Factory
    routes: RoutesFactory | None = None


_types: dict[ChannelKind, ChannelType] = {}


def register(kind: ChannelKind, factory: Factory, routes: RoutesFactory | None = None) -> None:
    _types[kind] = ChannelType(kind, factory, routes)


def channel_type(kind: ChannelKind) -> ChannelType | None:
    return _types.get(kind)


def channel_types() -> list[ChannelType]:
    return list(_types.values())
