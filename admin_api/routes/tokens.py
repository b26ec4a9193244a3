"""Room tokens for frontends: join a room, carry the routing metadata, dispatch the worker.

The token holds the participant metadata and a RoomConfiguration that explicitly dispatches
the worker agent name (with the same metadata as the dispatch's job metadata, which the
worker reads first). With worker pools configured (`ADMIN_API_AGENT_NAMES`), the metadata
is routed here with the worker's Router to pick the pool of the type it will get (on configs
from the read cache: the worker routes again on arrival); with one pool there is nothing to
decide and no database round trip.
"""

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from livekit import api
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from admin_api.deps import ResolverDep, ServicesDep, TokenKey
from admin_api.problems import FieldProblem, ProblemError, invalid_request, problem_responses
from admin_api.routes import API_V1
from agent_configs.models import Slug
from agent_configs.routing.context import MAX_METADATA_BYTES, MAX_TEXT_FIELD_LENGTH

router = APIRouter(prefix=API_V1, tags=["tokens"])

ShortText = Field(default=None, min_length=1, max_length=MAX_TEXT_FIELD_LENGTH)


class RoomMetadata(BaseModel):
    """What the router reads. Other keys are kept (custom strategies may read them)."""

    model_config = ConfigDict(extra="allow")

    purpose: str | None = ShortText
    agent_id: Slug | None = None
    user_id: str | StrictInt | None = Field(
        default=None, description="Numeric ids are accepted, as from many frontends."
    )
    user_details: dict[str, Any] | None = None
    tenant: str | None = ShortText


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:=-]+$",
        description="Generated if absent.",
    )
    identity: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Generated if absent.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    metadata: RoomMetadata | None = Field(
        default=None, description=f"At most {MAX_METADATA_BYTES} bytes as JSON."
    )


class RoomToken(BaseModel):
    server_url: str
    token: str
    room: str
    identity: str
    agent_name: str = Field(description="The worker agent name the token dispatches.")
    expires_at: datetime


def metadata_text(metadata: RoomMetadata | None) -> str:
    """Compact JSON of the metadata, refused over the limit the worker also applies."""
    if metadata is None:
        return ""
    text = json.dumps(metadata.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        message = f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        raise invalid_request([FieldProblem(field="metadata", message=message)])
    return text


@router.post("/token", responses=problem_responses(400, 401, 403, 413, 422, 429, 503))
async def mint_token(
    caller: TokenKey, request: TokenRequest, services: ServicesDep, resolver: ResolverDep
) -> RoomToken:
    """A LiveKit token for one participant of one room, dispatching the worker that serves it."""
    wait_s = services.token_buckets.take(caller.key_id)
    if wait_s is not None:
        retry_after = str(max(1, math.ceil(wait_s)))
        raise ProblemError(
            429,
            "rate-limited",
            "Too many token requests",
            f"retry in {retry_after}s",
            headers={"Retry-After": retry_after},
        )
    metadata = metadata_text(request.metadata)
    agent_name = await resolver.agent_name_for_room(metadata or None)
    room = request.room or f"room-{uuid.uuid4().hex[:12]}"
    identity = request.identity or f"user-{uuid.uuid4().hex[:12]}"
    settings = services.settings
    ttl = timedelta(seconds=settings.admin_api_token_ttl_s)
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
        .with_identity(identity)
        .with_ttl(ttl)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata=metadata)])
        )
    )
    if request.name:
        token = token.with_name(request.name)
    if metadata:
        token = token.with_metadata(metadata)
    return RoomToken(
        server_url=settings.frontend_livekit_url,
        token=token.to_jwt(),
        room=room,
        identity=identity,
        agent_name=agent_name,
        expires_at=datetime.now(UTC) + ttl,
    )
