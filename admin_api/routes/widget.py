"""The website widget's way in: `POST /api/v1/widget/token` and `GET /widget.js`.

A page embeds `<script src="https://api.example/widget.js" data-key="pk_..." async>`; the
script (console/src/widget, built into console/dist/widget.js) asks this route for a room
token and joins LiveKit from the visitor's browser, like any frontend. What it may ask for is
the widget binding's (agent_configs/channels.py, `kind: widget`), named by the binding's
publishable key in the `Switchboard-Publishable-Key` header. That key is not a secret (it sits
in the page), so it grants only this:

- only from the binding's listed origins: the browser's `Origin` header must be exactly one of
  `widget.origins` (403 naming `Origin` otherwise). A script elsewhere can forge the header,
  so this keeps other sites' pages from using the key, not a determined client: which is why
  the token carries nothing a browser could not be trusted with;
- only the binding's own target or one listed in `widget.purposes` / `widget.agent_ids`
  (403 naming `purpose` or `agent_id` otherwise);
- never a `user_id`, a pin, a room or an identity of its choosing: the visitor is anonymous
  (the browser is no trusted party; DESIGN.md "Identity"), the room and identity are
  generated, and per-user memory does not apply;
- only while the binding exists and is enabled: an unknown key and a disabled binding get the
  same 403, so the answer never says which keys exist;
- at the token route's rate per client address (the key is public, so a per-key bucket
  would let one visitor exhaust every other visitor's share).

The token is minted as POST /token mints one (admin_api/room_tokens.py: grant, dispatch and
the `token.minted` event, whose actor is `widget:<binding_id>` and whose details name the
binding and the origin). Its job metadata is the routing metadata (the target, the binding's
`user_details`, `"modality": "text"` for a text chat) plus the channel mark
`switchboard_channel: {kind: "widget", binding_id, conversation_id: <the room>}`, which the
worker copies to the session record as `channel`.

CORS: this path answers its own preflight (widget_cors.py runs it ahead of the API-wide CORS
and OPTIONS handling), allowing an origin that some widget binding lists; the POST's answer
allows the page's origin only when the key's binding lists it, whatever the status, so the
widget can show why it was refused. Other origins get no Access-Control-Allow-Origin: their
browser never lets the page read the answer.
"""

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from admin_api.console import ConsoleBuild
from admin_api.deps import ResolverDep, ServicesDep
from admin_api.problems import (
    FieldProblem,
    ProblemError,
    invalid_request,
    problem_response,
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
from admin_api.services import Services
from agent_configs.channels import (
    CHANNEL_BINDINGS,
    CHANNEL_KEY,
    ChannelBinding,
    ChannelKind,
    binding_by_publishable_key,
)
from agent_configs.database import database_errors
from agent_configs.models import Slug
from agent_configs.routing.context import MAX_METADATA_BYTES, MAX_TEXT_FIELD_LENGTH

router = APIRouter(prefix=API_V1, tags=["widget"])
script_router = APIRouter()

WIDGET_TOKEN_PATH = f"{API_V1}/widget/token"
PUBLISHABLE_KEY_HEADER = "Switchboard-Publishable-Key"
ALLOWED_ORIGIN_STATE = "widget_allowed_origin"
"""Where the request's state holds the origin its answer may be read from (widget_cors.py)."""
PREFLIGHT_MAX_AGE_S = 600
MAX_KEY_LENGTH = 200
SCRIPT_NAME = "widget.js"
SCRIPT_CACHE = "public, max-age=300"
"""The script's URL never changes (pages embed it), so it cannot be cached for long like
assets/; five minutes, then revalidated by its ETag, brings a new build to pages quickly."""


class WidgetTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXT_FIELD_LENGTH,
        description="The binding's own purpose or one of its `widget.purposes`.",
    )
    agent_id: Slug | None = Field(
        default=None, description="The binding's own agent type or one of its `widget.agent_ids`."
    )
    modality: Literal["text", "voice"] = Field(
        default="text", description="text: a chat without audio; voice: the microphone too."
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def take_rate(services: Services, request: Request) -> None:
    wait_s = services.widget_buckets.take(client_address(request))
    if wait_s is not None:
        raise rate_limited(wait_s, "Too many widget token requests")


def _key_refused() -> ProblemError:
    return ProblemError(
        403,
        "widget-key-refused",
        "The publishable key is refused",
        "the key is not the publishable key of an enabled widget binding",
    )


async def widget_binding(
    request: Request,
    services: ServicesDep,
    publishable_key: Annotated[
        str | None,
        Header(
            alias=PUBLISHABLE_KEY_HEADER,
            description="The widget binding's publishable key (`pk_...`): not a secret.",
        ),
    ] = None,
    origin: Annotated[
        str | None, Header(description="Set by the browser: the page's origin.")
    ] = None,
) -> ChannelBinding:
    """The enabled widget binding of the key, once the page's origin is one it lists.

    A dependency rather than part of the handler: it runs before the body is validated, so
    even a 422 can be read by a page of a listed origin (the origin is noted for widget_cors).
    """
    take_rate(services, request)
    if not publishable_key or len(publishable_key) > MAX_KEY_LENGTH:
        message = "required: the publishable key (`pk_...`) of a widget binding"
        raise invalid_request(
            [FieldProblem(field=PUBLISHABLE_KEY_HEADER, message=message, location="header")]
        )
    with database_errors():
        binding = await binding_by_publishable_key(services.database, publishable_key)
    if binding is None or binding.kind != ChannelKind.WIDGET or binding.widget is None:
        raise _key_refused()
    listed = origin is not None and origin in binding.widget.origins
    if listed:
        setattr(request.state, ALLOWED_ORIGIN_STATE, origin)
    if not binding.enabled:
        raise _key_refused()
    if not listed:
        shown = "no Origin header" if origin is None else f"the origin {origin!r}"
        message = "is not one of the origins this widget binding lists"
        raise ProblemError(
            403,
            "origin-refused",
            "This site may not use this widget",
            f"{shown} is not allowed to use this key",
            errors=[FieldProblem(field="Origin", message=message, location="header")],
        )
    return binding


WidgetBinding = Annotated[ChannelBinding, Depends(widget_binding)]


def requested_target(binding: ChannelBinding, body: WidgetTokenRequest) -> dict[str, str]:
    """What the room is routed by: the binding's own target unless the page asks for another
    the binding lists (403 naming the field otherwise). The allowed values are not echoed:
    the key is public, the binding's configuration is not."""
    if body.purpose is not None and body.agent_id is not None:
        message = "give at most one of purpose and agent_id"
        raise invalid_request([FieldProblem(field="agent_id", message=message)])
    assert binding.widget is not None
    for field, asked, own, listed in (
        ("purpose", body.purpose, binding.purpose, binding.widget.purposes),
        ("agent_id", body.agent_id, binding.agent_id, binding.widget.agent_ids),
    ):
        if asked is None:
            continue
        if asked != own and asked not in listed:
            message = f"is not one this widget binding lets a page ask for (its `widget.{field}s`)"
            raise ProblemError(
                403,
                "widget-target-refused",
                "Not allowed for this widget",
                f"{field}: {message}",
                errors=[FieldProblem(field=field, message=message)],
            )
        return {field: asked}
    return {"agent_id": binding.agent_id} if binding.agent_id else {"purpose": str(binding.purpose)}


def compact(values: dict[str, Any]) -> str:
    text = json.dumps(values, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_METADATA_BYTES:
        # Only the binding's user_details can make it this large: the admin's to fix.
        raise ProblemError(
            409,
            "binding-metadata-too-large",
            "The widget binding cannot be used",
            f"its user_details make the room metadata over {MAX_METADATA_BYTES} bytes",
        )
    return text


WIDGET_RESPONSES = problem_responses(400, 413, 422, 429, 503) | {
    403: {
        "description": "The key is unknown or its binding disabled, the Origin is not listed, "
        "or the purpose / agent_id is not one the binding allows",
        "content": problem_responses(403)[403]["content"],
    },
    409: {
        "description": "The binding's user_details are too large for a room",
        "content": problem_responses(409)[409]["content"],
    },
}


@router.post("/widget/token", responses=WIDGET_RESPONSES)
async def mint_widget_token(
    binding: WidgetBinding,
    body: WidgetTokenRequest,
    request: Request,
    services: ServicesDep,
    resolver: ResolverDep,
) -> RoomToken:
    """A room token for an anonymous visitor of a page that embeds the website widget.

    Authenticated by the widget binding's publishable key (`Switchboard-Publishable-Key`), not
    by an API key; allowed from the binding's origins only. The visitor gets no `user_id`."""
    target = requested_target(binding, body)
    metadata: dict[str, Any] = dict(target)
    if binding.user_details:
        metadata["user_details"] = dict(binding.user_details)
    if body.modality == "text":
        metadata["modality"] = "text"
    room = generated_room()
    participant_metadata = compact(metadata)
    dispatch_metadata = compact(metadata | {CHANNEL_KEY: binding.channel_mark(room)})
    decision = await resolver.route_for_token(participant_metadata)
    grant = RoomGrant(
        room=room,
        identity=generated_identity(),
        agent_id=decision.agent_id,
        agent_name=resolver.agent_name_for(decision.agent_id),
        routed_by=decision.strategy,
        dispatch_metadata=dispatch_metadata,
        participant_metadata=participant_metadata,
        details={
            "binding_id": binding.binding_id,
            "channel": str(ChannelKind.WIDGET),
            "origin": getattr(request.state, ALLOWED_ORIGIN_STATE, None),
            "modality": body.modality,
            "pinned": None,
            "room_named": False,
            "identity_named": False,
            "metadata_fields": sorted(metadata),
            "other_metadata_keys": 0,
        },
    )
    actor = f"widget:{binding.binding_id}"
    return await issue_room_token(services.settings, services.events, actor, grant)


async def origin_is_listed(services: Services, origin: str) -> bool:
    """Whether some widget binding lists `origin` (the preflight carries no key to say which)."""
    with database_errors():
        found = await services.database[CHANNEL_BINDINGS].find_one(
            {"kind": str(ChannelKind.WIDGET), "widget.origins": origin}, {"_id": 1}
        )
    return found is not None


async def widget_preflight(request: Request) -> Response:
    """The browser's CORS preflight of POST /widget/token (widget_cors.py sends it here)."""
    services: Services = request.app.state.services
    origin = request.headers["origin"]
    try:
        take_rate(services, request)
        listed = await origin_is_listed(services, origin)
    except ProblemError as refused:
        return problem_response(
            request,
            refused.status,
            refused.slug,
            refused.title,
            refused.detail,
            headers=refused.headers | {"Vary": "Origin"},
        )
    if not listed:
        return problem_response(
            request,
            403,
            "origin-refused",
            "This site may not use this widget",
            "no widget binding lists this origin",
            headers={"Vary": "Origin"},
        )
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": f"Content-Type, {PUBLISHABLE_KEY_HEADER}",
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
            "Vary": "Origin",
        },
    )


# HEAD too: the widget asks it, cheaply, whether the API is up when a token request fails
# unreadably (a refused origin and a network failure look alike to a script).
@script_router.api_route(f"/{SCRIPT_NAME}", methods=["GET", "HEAD"], include_in_schema=False)
def widget_script(request: Request, services: ServicesDep) -> Response:
    """console/dist/widget.js, loadable by any page (`Access-Control-Allow-Origin: *`: it is a
    public script; a page with `crossorigin` on its tag or a COEP policy needs the header)."""
    build = ConsoleBuild(Path(services.settings.admin_api_console_dir))
    found = build.find(SCRIPT_NAME)
    if found is None:
        return problem_response(
            request,
            503,
            "widget-not-built",
            "The widget is not built",
            "build the console (`make console`): it writes console/dist/widget.js",
            headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"},
        )
    return build.response(
        found,
        request,
        {
            "Cache-Control": SCRIPT_CACHE,
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )
