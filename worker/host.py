"""What hand-offs and escalations (worker/handoffs.py, worker/escalation.py) act on: the
conversation (worker/conversation.py implements it), named here so that they need not import
it."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import AgentSession

from agent_configs.models import AgentConfig
from worker.outputs import SessionOutputs
from worker.session import ConfiguredAgent
from worker.transcript import Transcript
from worker.turns import Message, StructuredCaller

HandoffFinder = Callable[[str, str], Awaitable[tuple[AgentConfig, dict[str, Any]] | None]]
"""`await find(current_agent_id, user_text)` -> (target config, match details) or None."""

AgentFactory = Callable[[AgentConfig, list[Message]], Awaitable[ConfiguredAgent]]
"""`await build(config, history)` -> a ready agent of that type that continues `history`."""

SlotMover = Callable[[AgentConfig], Awaitable[bool]]
"""`await move(target)` -> whether the session now holds a capacity slot of the target type
(False: the target is at `max_concurrent_sessions`, the session keeps its slot)."""

TargetLoader = Callable[[str], Awaitable[AgentConfig]]
"""`await load(agent_id)` -> the config of a transfer target, read the way routing reads one;
raises TransferRefused when it cannot take a session (unknown, paused, refused by the egress
policy, outside the pool)."""


class ConversationHost(Protocol):
    session_id: str
    room: rtc.Room
    session: AgentSession
    agent: ConfiguredAgent
    transcript: Transcript
    outputs: SessionOutputs
    end_reason: str | None
    end_detail: str | None

    @property
    def build_agent(self) -> AgentFactory: ...

    @property
    def find_handoff(self) -> HandoffFinder | None: ...

    @property
    def move_slot(self) -> SlotMover | None: ...

    @property
    def load_target(self) -> TargetLoader | None: ...

    @property
    def config(self) -> AgentConfig: ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    def caller(self, agent: ConfiguredAgent | None = None) -> StructuredCaller: ...

    async def equip(self, agent: ConfiguredAgent) -> None: ...

    async def entered(self, agent: ConfiguredAgent) -> None: ...

    def in_background(self, work: Awaitable[None], name: str) -> None: ...
