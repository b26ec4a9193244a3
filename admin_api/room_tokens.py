"""Minting a LiveKit room token that dispatches the worker, for every route that hands one out
(POST /token for API keys, POST /widget/token for a website widget's publishable key).

The route decides who asks and what the room is routed by; this module does the rest the same
way for both: a generated room and identity (unless the route took them from a caller allowed
to name them), a grant that joins only that room and may not change its own metadata
(`canUpdateOwnMetadata: false`, set explicitly rather than left to LiveKit's default: the
worker trusts what the token carries), an explicit dispatch of the worker agent name with the
job metadata, and the `token.minted` audit event, stored before the token is returned (a 503
when it cannot be).
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from livekit import api
from pydantic import BaseModel, Field

from admin_api.events import EventLog, EventType
from admin_api.settings import AdminSettings


class RoomToken(BaseModel):
    server_url: str
    token: str
    room: str
    identity: str
    agent_name: str = Field(description="The worker agent name the token dispatches.")
    expires_at: datetime


def generated_room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


def generated_identity() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class RoomGrant:
    """What one token lets its holder do, as the route decided it."""

    room: str
    identity: str
    agent_id: str | None
    """The routed (or pinned) type, for the audit event."""
    agent_name: str
    routed_by: str | None
    dispatch_metadata: str
    """The job metadata: what the worker reads first (routing, pin, channel mark)."""
    participant_metadata: str = ""
    name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """The route's own facts for the audit event (key id or binding, what was named...)."""


async def issue_room_token(
    settings: AdminSettings, events: EventLog, actor: str, grant: RoomGrant
) -> RoomToken:
    ttl = timedelta(seconds=settings.admin_api_token_ttl_s)
    grants = api.VideoGrants(room_join=True, room=grant.room, can_update_own_metadata=False)
    dispatch = api.RoomAgentDispatch(agent_name=grant.agent_name, metadata=grant.dispatch_metadata)
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
        .with_identity(grant.identity)
        .with_ttl(ttl)
        .with_grants(grants)
        .with_room_config(api.RoomConfiguration(agents=[dispatch]))
    )
    if grant.name:
        token = token.with_name(grant.name)
    if grant.participant_metadata:
        token = token.with_metadata(grant.participant_metadata)
    jwt = token.to_jwt()
    await events.record(
        EventType.TOKEN_MINTED,
        actor,
        agent_id=grant.agent_id,
        room=grant.room,
        details={
            "identity": grant.identity,
            "agent_name": grant.agent_name,
            "routed_by": grant.routed_by,
            **grant.details,
        },
        must_persist=True,
    )
    return RoomToken(
        server_url=settings.frontend_livekit_url,
        token=jwt,
        room=grant.room,
        identity=grant.identity,
        agent_name=grant.agent_name,
        expires_at=datetime.now(UTC) + ttl,
    )
