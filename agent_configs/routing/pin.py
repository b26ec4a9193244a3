"""A pinned agent type: "serve this room with type X (at version N)", whatever the rules say.

The console's playground lets an admin try any agent type, a paused one or an older version
included, which the `explicit` strategy cannot (it only serves its allowlist, and always the
current version). The pin travels under one reserved key of the *job* (dispatch) metadata:

    {"purpose": "...", "switchboard_pin": {"agent_id": "sales-agent-v1", "version": 2}}

Only the job metadata is read for it, never the room's or a participant's. A dispatch's
metadata is signed with the LiveKit key (in the RoomConfiguration of a token, or a dispatch
made through the API), so only the token endpoint (`POST /token` with the `token:agent`
scope, which also refuses a caller's metadata carrying this key) or the operator's own
backend can pin a room. A participant that may edit its own metadata cannot.

Who may be pinned: any type that exists and is not archived, paused ones included (testing a
type before resuming it is the point), at any version the history keeps. Everything else is
the same as for a routed session: the worker pool, the egress policy, the capacity limit.
A pin the worker cannot honour is skipped with the reason in the trail, and the room is
routed as if there were no pin.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agent_configs.egress import EgressPolicy
from agent_configs.errors import AgentNotFound, DatabaseUnavailable
from agent_configs.models import AgentConfig, AgentStatus
from agent_configs.routing.availability import NOT_IN_POOL, UNKNOWN_AGENT, ConfigSource
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.router import RoutingDecision, TrailEntry

PIN_KEY = "switchboard_pin"
PINNED = "pinned"
"""The routing strategy a pinned session records (decision, trail, session record, attribute)."""


@dataclass(frozen=True)
class AgentPin:
    agent_id: str
    version: int | None = None
    """None: the current version."""

    def as_metadata(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id} | (
            {"version": self.version} if self.version is not None else {}
        )

    def describe(self) -> str:
        return f"{self.agent_id} " + (
            f"version {self.version}" if self.version is not None else "current version"
        )


def pin_from_job_metadata(context: RoutingContext) -> tuple[AgentPin | None, str | None]:
    """The pin in a job's parsed metadata (its `raw`), and a warning when one is malformed."""
    value = context.raw.get(PIN_KEY)
    if value is None:
        return None, None
    if not isinstance(value, dict):
        return None, f"{PIN_KEY}: expected an object, got {type(value).__name__}; ignored"
    agent_id, version = value.get("agent_id"), value.get("version")
    if not isinstance(agent_id, str) or not agent_id:
        return None, f"{PIN_KEY}.agent_id: expected an agent id; ignored"
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        return None, f"{PIN_KEY}.version: expected a version number >= 1; ignored"
    return AgentPin(agent_id, version), None


class VersionSource(Protocol):
    async def get_version(self, agent_id: str, version: int) -> AgentConfig:
        """Raises AgentNotFound for a version the history does not hold."""
        ...


async def pinned_config(
    pin: AgentPin,
    configs: ConfigSource,
    versions: VersionSource,
    *,
    pool: frozenset[str] = frozenset(),
    egress: EgressPolicy | None = None,
) -> tuple[AgentConfig | None, str | None]:
    """The config a pin runs on, or why it cannot run (capacity is the caller's to claim).

    Archived is decided by the type's *current* status (an archived type is retired, at every
    version); a paused one may be pinned. The egress policy is checked on the version that
    would run: an old version may name a key the operator has since stopped allowing."""
    if pool and pin.agent_id not in pool:
        return None, NOT_IN_POOL
    try:
        current = await configs.get(pin.agent_id)
    except AgentNotFound:
        return None, UNKNOWN_AGENT
    if current.status == AgentStatus.ARCHIVED:
        return None, str(AgentStatus.ARCHIVED)
    config = current
    if pin.version is not None and pin.version != current.version:
        try:
            config = await versions.get_version(pin.agent_id, pin.version)
        except AgentNotFound:
            return None, f"no version {pin.version} (current is {current.version})"
        except DatabaseUnavailable:  # offline, the snapshot holds current versions only
            return None, f"version {pin.version} cannot be read: the database is unreachable"
    refused = egress.refusal(config) if egress is not None else None
    if refused is not None:
        return None, refused
    return config, None


def pinned_decision(
    pin: AgentPin, context: RoutingContext, rules_version: int, now: datetime
) -> RoutingDecision:
    entry = TrailEntry(
        strategy=PINNED, agent_id=pin.agent_id, outcome="chosen", reason=f"pinned: {pin.describe()}"
    )
    return RoutingDecision(
        agent_id=pin.agent_id,
        strategy=PINNED,
        trail=(entry,),
        warnings=context.warnings,
        rules_version=rules_version,
        decided_at=now,
    )


def with_pin_skipped(decision: RoutingDecision, pin: AgentPin, reason: str) -> RoutingDecision:
    """A routed decision whose trail starts with the pin it could not honour, and why."""
    entry = TrailEntry(
        strategy=PINNED,
        agent_id=pin.agent_id,
        outcome="skipped",
        reason=f"{pin.describe()}: {reason}",
    )
    return decision.model_copy(update={"trail": (entry, *decision.trail)})
