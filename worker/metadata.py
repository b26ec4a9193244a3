"""Job, room and participant metadata -> one RoutingContext. Never raises.

Self-hosted LiveKit servers have delivered metadata empty in some places, so all of them are
read, in a fixed precedence: explicit dispatch metadata, then room metadata, then the first
participant's metadata, then its attributes. The first source that says anything wins;
problems found in the sources before it are kept as warnings, so a malformed payload is
visible in the routing decision instead of silently replaced.
"""

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from livekit import rtc

from agent_configs.routing.context import MAX_METADATA_BYTES, RoutingContext

SOURCES = ("job", "room", "participant", "participant_attributes")


def _says_something(context: RoutingContext) -> bool:
    return bool(context.agent_id or context.purpose or context.user_id or context.user_details)


def _attributes_payload(attributes: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Attributes are strings: `user_details` may arrive as a JSON object in text.

    That text is the one payload here that is parsed before RoutingContext's own checks, so it
    gets the same ones first: over MAX_METADATA_BYTES it is not parsed at all, and a payload
    nested deeper than the parser's recursion limit (a 3000-deep object raised RecursionError
    out of the entrypoint) is dropped like invalid JSON. Either way the problem is returned
    as a warning and the other attributes still route the room.
    """
    payload: dict[str, Any] = {k: v for k, v in attributes.items() if not k.startswith("lk.")}
    details = payload.get("user_details")
    if not isinstance(details, str):
        return payload, []
    size = len(details.encode("utf-8", errors="replace"))
    if size > MAX_METADATA_BYTES:
        del payload["user_details"]
        return payload, [
            f"user_details: {size} bytes is over the {MAX_METADATA_BYTES}-byte limit; ignored"
        ]
    try:
        payload["user_details"] = json.loads(details)
    except RecursionError:
        del payload["user_details"]
        return payload, ["user_details: nested too deeply to parse; ignored"]
    except ValueError:
        pass  # left as text; RoutingContext records the wrong type as a warning
    return payload, []


def routing_context(
    job_metadata: str | None,
    room_metadata: str | None,
    participant_metadata: str | None = None,
    participant_attributes: Mapping[str, str] | None = None,
) -> tuple[RoutingContext, str | None]:
    """The context and the name of the source it came from (None when all were empty)."""
    attributes, attribute_warnings = _attributes_payload(participant_attributes or {})
    candidates = (job_metadata, room_metadata, participant_metadata, attributes or None)
    earlier_warnings: list[str] = []
    for source, value in zip(SOURCES, candidates, strict=True):
        context = RoutingContext.from_metadata(value)
        if source == "participant_attributes" and attribute_warnings:
            context = replace(context, warnings=(*attribute_warnings, *context.warnings))
        if _says_something(context):
            warnings = (*earlier_warnings, *(f"{source}: {w}" for w in context.warnings))
            return replace(context, warnings=warnings), source
        earlier_warnings.extend(f"{source}: {w}" for w in context.warnings)
    return RoutingContext(warnings=tuple(earlier_warnings)), None


UNTRUSTED_USER_ID = (
    "user_id: set by a participant allowed to change its own metadata, so not asserted by a "
    "trusted party; ignored (no memory, no per-user records)"
)


def trusted_user_id(
    context: RoutingContext, source: str | None, participant: rtc.RemoteParticipant | None
) -> RoutingContext:
    """Drop a `user_id` the client itself could have chosen.

    Per-user memory loads a user's past turns by `user_id`, and a turn is stored under it, so
    a client naming someone else's id would read (and write into) that user's history. Job
    and room metadata are set only with a LiveKit API key (the token endpoint, a backend);
    participant metadata and attributes are too, unless the token lets the participant
    update them (`canUpdateOwnMetadata`), in which case what they say is the client's word.
    """
    if context.user_id is None or source not in ("participant", "participant_attributes"):
        return context
    if participant is not None and not participant.permissions.can_update_metadata:
        return context
    return replace(
        context, user_id=None, warnings=(*context.warnings, f"{source}: {UNTRUSTED_USER_ID}")
    )
