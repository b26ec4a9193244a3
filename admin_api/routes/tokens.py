"""Room tokens for frontends: join a room, carry the routing metadata, dispatch the worker.

The token holds the participant metadata and a RoomConfiguration that explicitly dispatches
the worker agent name (with the same metadata as the dispatch's job metadata, which the
worker reads first). The metadata is routed here with the worker's Router (on configs from
the read cache: the worker routes again on arrival) to pick the pool of the type it will get
(`ADMIN_API_AGENT_NAMES`) and to name that type in the audit event.

Identity is the server's to decide: the room name and the participant identity are generated
unless the caller's key has the `token:room` / `token:identity` scope (admin keys have both).
Otherwise anyone holding a token-role key could join any room whose name it knows, or reuse
an identity and take that participant's seat while the agent keeps talking to it. The
participant may not change its own metadata or attributes (`canUpdateOwnMetadata: false`,
set explicitly rather than left to LiveKit's default): the worker trusts the `user_id` these
tokens carry because only the holder of a token-role key could have put it there.

With the `token:agent` scope (admin keys have it) a caller may pin the room's agent type,
and optionally one of its stored versions: `"agent": {"agent_id": "sales-agent-v1",
"version": 2}`. The console's playground uses it to try any type, paused or not, regardless
of the routing rules. The pin goes into the dispatch's job metadata only, under the reserved
key `switchboard_pin` (agent_configs/routing/pin.py), which the worker reads from nowhere
else; a caller's own metadata may not contain that key (422), so a key without the scope
cannot pin a room through it. The participant's metadata never carries the pin.

Every minted token is a `token.minted` event, stored before the token is returned (a 503 if
it cannot be): actor = key name, `room`, `agent_id` = the routed (or pinned) type, and in
`details` the key id, identity, worker agent name, routing strategy (`pinned` for a pin),
`pinned` (`{agent_id, version}` or null), whether the caller named the room or identity, and
the names of the known metadata fields present. Never a metadata value, and not the names of
extra keys either (a caller chooses those, so one could carry a value): only how many there
were. The token and the event are made by admin_api/room_tokens.py, which the website widget's
route (routes/widget.py) shares.
"""

import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from admin_api.auth import ApiKey, Scope
from admin_api.deps import ResolverDep, ServicesDep, TokenKey
from admin_api.problems import (
    FieldProblem,
    ProblemError,
    invalid_request,
    problem_responses,
    rate_limited,
)
from admin_api.room_tokens import (
    RoomGrant,
    RoomToken,
    generated_identity,
    generated_room,
    issue_room_token,
)
from admin_api.routes import API_V1
from agent_configs.errors import AgentNotFound
from agent_configs.models import AgentStatus, Slug
from agent_configs.routing.context import MAX_METADATA_BYTES, MAX_TEXT_FIELD_LENGTH
from agent_configs.routing.pin import PIN_KEY, PINNED, AgentPin
from agent_configs.store import ConfigStore

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


class AgentPinRequest(BaseModel):
    """Serve the room with this agent type, whatever the routing rules would pick."""

    model_config = ConfigDict(extra="forbid")

    agent_id: Slug = Field(
        description="An agent type that exists and is not archived (paused is fine)."
    )
    version: int | None = Field(
        default=None,
        ge=1,
        description="One of the type's stored versions; the current one if absent.",
    )


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:=-]+$",
        description="Generated if absent. Naming it needs the `token:room` scope (403 without).",
    )
    identity: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Generated if absent. Naming it needs the `token:identity` scope (403 without).",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    metadata: RoomMetadata | None = Field(
        default=None,
        description=f"At most {MAX_METADATA_BYTES} bytes as JSON. The key `{PIN_KEY}` is reserved (422).",
    )
    agent: AgentPinRequest | None = Field(
        default=None,
        description="Pin the agent type (and version) the room gets, past the routing rules. "
        "Needs the `token:agent` scope (403 without).",
    )


def metadata_text(metadata: RoomMetadata | None, pin: AgentPin | None = None) -> str:
    """Compact JSON of the metadata (with the pin, for the dispatch), refused over the limit
    the worker also applies."""
    if metadata is None and pin is None:
        return ""
    values = metadata.model_dump(mode="json", exclude_none=True) if metadata is not None else {}
    if pin is not None:
        values[PIN_KEY] = pin.as_metadata()
    text = json.dumps(values, separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        message = f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        raise invalid_request([FieldProblem(field="metadata", message=message)])
    return text


_SCOPED_FIELDS = (
    ("room", Scope.TOKEN_ROOM, "omit it and the server generates one"),
    ("identity", Scope.TOKEN_IDENTITY, "omit it and the server generates one"),
    ("agent", Scope.TOKEN_AGENT, "omit it and the routing rules pick the agent type"),
)


def check_scopes(caller: ApiKey, request: TokenRequest) -> None:
    """403 naming each field the caller set without the scope that allows it."""
    problems = [
        FieldProblem(field=field, message=f"needs the {scope} scope; {otherwise}")
        for field, scope, otherwise in _SCOPED_FIELDS
        if getattr(request, field) is not None and not caller.allows(scope)
    ]
    if problems:
        detail = f"the key '{caller.name}' may not name: " + ", ".join(p.field for p in problems)
        raise ProblemError(
            403, "scope-required", "Not allowed for this API key", detail, errors=problems
        )


def refuse_reserved_metadata(metadata: RoomMetadata | None) -> None:
    """The pin's key is the token endpoint's to write: a caller's metadata carrying it is
    refused rather than passed on, or any token-role key could pin a room without the scope."""
    if metadata is not None and PIN_KEY in (metadata.model_extra or {}):
        message = (
            "is reserved for the agent pin; send `agent` instead (needs the token:agent scope)"
        )
        raise invalid_request([FieldProblem(field=f"metadata.{PIN_KEY}", message=message)])


async def checked_pin(store: ConfigStore, requested: AgentPinRequest | None) -> AgentPin | None:
    """The pin, once the type is known not to be archived and the version to be stored
    (422 naming `agent.agent_id` or `agent.version` otherwise). Read from the store, not a
    cache: a type created a moment ago in the console can be tried at once."""
    if requested is None:
        return None
    try:
        current = await store.get(requested.agent_id)
    except AgentNotFound:
        raise invalid_request(
            [FieldProblem(field="agent.agent_id", message="no agent type has this id")]
        ) from None
    if current.status == AgentStatus.ARCHIVED:
        message = "is archived; restore it (set its status to paused or active) to try it"
        raise invalid_request([FieldProblem(field="agent.agent_id", message=message)])
    version = requested.version
    if version is not None and version != current.version:
        try:
            await store.get_version(requested.agent_id, version)
        except AgentNotFound:
            message = f"{requested.agent_id} has no version {version}; its current version is {current.version}"
            raise invalid_request([FieldProblem(field="agent.version", message=message)]) from None
    return AgentPin(requested.agent_id, version)


def metadata_shape(metadata: RoomMetadata | None) -> dict[str, Any]:
    """What the audit may say about the metadata: which known fields are set, how many others."""
    if metadata is None:
        return {"metadata_fields": [], "other_metadata_keys": 0}
    known = sorted(
        name for name in RoomMetadata.model_fields if getattr(metadata, name) is not None
    )
    return {"metadata_fields": known, "other_metadata_keys": len(metadata.model_extra or {})}


@router.post("/token", responses=problem_responses(400, 401, 403, 413, 422, 429, 503))
async def mint_token(
    caller: TokenKey, request: TokenRequest, services: ServicesDep, resolver: ResolverDep
) -> RoomToken:
    """A LiveKit token for one participant of one room, dispatching the worker that serves it."""
    wait_s = services.token_buckets.take(caller.key_id)
    if wait_s is not None:
        raise rate_limited(wait_s, "Too many token requests")
    check_scopes(caller, request)
    refuse_reserved_metadata(request.metadata)
    pin = await checked_pin(services.store, request.agent)
    metadata = metadata_text(request.metadata)
    dispatch_metadata = metadata_text(request.metadata, pin)
    agent_id: str | None
    routed_by: str | None
    if pin is not None:
        agent_id, routed_by = pin.agent_id, PINNED
    else:
        decision = await resolver.route_for_token(metadata or None)
        agent_id, routed_by = decision.agent_id, decision.strategy
    grant = RoomGrant(
        room=request.room or generated_room(),
        identity=request.identity or generated_identity(),
        agent_id=agent_id,
        agent_name=resolver.agent_name_for(agent_id),
        routed_by=routed_by,
        dispatch_metadata=dispatch_metadata,
        participant_metadata=metadata,
        name=request.name,
        details={
            "key_id": caller.key_id,
            "pinned": pin.as_metadata() if pin is not None else None,
            "room_named": request.room is not None,
            "identity_named": request.identity is not None,
            **metadata_shape(request.metadata),
        },
    )
    return await issue_room_token(services.settings, services.events, caller.name, grant)
