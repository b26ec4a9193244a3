"""What a room tells the router: its metadata, parsed without ever raising.

Metadata comes from frontends we do not control. A malformed payload must not cost the
user their session: whatever cannot be used is dropped, the rest is kept, and each problem
is recorded as a warning (`field: problem`) that ends up in the routing decision.

JSON may spell a lone UTF-16 surrogate (`"\\udfff"`); `json.loads` turns it into a Python
string that no UTF-8 encoder accepts. Such a string crashed the job when it was an `agent_id`
and made every record of the session unwritable (BSON is UTF-8) when it was a `user_id`.
So every string of a payload, keys and values at any depth, has its lone surrogates replaced
with U+FFFD here, once, before anything else sees it.
"""

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

MAX_METADATA_BYTES = 64 * 1024
MAX_TEXT_FIELD_LENGTH = 256

_TEXT_FIELDS = ("agent_id", "purpose", "user_id", "tenant")
_ID_FIELDS = ("user_id", "tenant")  # frontends often send numeric ids
_SURROGATE = re.compile("[\ud800-\udfff]")
"""Any surrogate code point left in a decoded str is a lone one: `json.loads` joins pairs."""


@dataclass(frozen=True, slots=True)
class RoutingContext:
    agent_id: str | None = None
    purpose: str | None = None
    user_id: str | None = None
    user_details: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    room: str | None = None
    """The LiveKit room's name: set by the worker (or the caller of a dry run), never read
    from metadata; a strategy asking another system (webhook) passes it on."""

    @property
    def modality(self) -> str | None:
        """`voice` or `text` when the metadata asks for one (what the frontend speaks)."""
        value = self.raw.get("modality")
        return value if isinstance(value, str) and len(value) <= MAX_TEXT_FIELD_LENGTH else None

    @classmethod
    def from_metadata(cls, value: str | bytes | dict[str, Any] | None) -> "RoutingContext":
        """Parse room/job/participant metadata. Never raises; problems become `warnings`.

        Empty or missing metadata is normal (self-hosted servers sometimes deliver none) and
        gives an empty context without a warning.
        """
        payload, problem = _decode_payload(value)
        if problem is not None:
            return cls(warnings=(problem,))
        try:
            payload, replaced = _replace_surrogates(payload)
        except RecursionError:  # a dict handed in directly can be deeper than JSON text allows
            return cls(warnings=("metadata: nested too deeply; ignored",))
        context = _context_from_object(payload)
        if replaced:
            warning = f"metadata: {replaced} lone UTF-16 surrogate(s) replaced with U+FFFD"
            context = replace(context, warnings=(warning, *context.warnings))
        return context


def _decode_payload(value: object) -> tuple[dict[str, Any], str | None]:
    if value is None:
        return {}, None
    if isinstance(value, dict):
        return _check_object_size(value)
    if isinstance(value, bytes | bytearray):
        if len(value) > MAX_METADATA_BYTES:
            return {}, _too_large(len(value))
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {}, "metadata: not UTF-8 text; ignored"
    if not isinstance(value, str):
        return {}, f"metadata: expected JSON text, got {type(value).__name__}; ignored"
    return _parse_json_text(value)


def _parse_json_text(text: str) -> tuple[dict[str, Any], str | None]:
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_METADATA_BYTES:
        return {}, _too_large(size)
    if not text.strip():
        return {}, None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return {}, f"metadata: not valid JSON ({_first_line(exc)}); ignored"
    if not isinstance(parsed, dict):
        return {}, f"metadata: expected a JSON object, got {_kind(parsed)}; ignored"
    return parsed, None


def _replace_surrogates(value: Any) -> tuple[Any, int]:
    """`value` with U+FFFD for every lone surrogate in its strings (dict keys included, at any
    depth), and how many were replaced. Values without any are returned as they are."""
    if isinstance(value, str):
        return _SURROGATE.subn("\ufffd", value)
    if isinstance(value, dict):
        replaced = 0
        cleaned: dict[Any, Any] = {}
        for key, item in value.items():
            key, in_key = _replace_surrogates(key)
            cleaned[key], in_item = _replace_surrogates(item)
            replaced += in_key + in_item
        return (cleaned if replaced else value), replaced
    if isinstance(value, list | tuple):
        results = [_replace_surrogates(item) for item in value]
        replaced = sum(count for _, count in results)
        return ([item for item, _ in results] if replaced else value), replaced
    return value, 0


def _check_object_size(value: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    try:
        size = len(json.dumps(value, default=str).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        return {}, f"metadata: cannot be represented as JSON ({_first_line(exc)}); ignored"
    if size > MAX_METADATA_BYTES:
        return {}, _too_large(size)
    return value, None


def _context_from_object(payload: dict[str, Any]) -> RoutingContext:
    warnings: list[str] = []
    texts = {name: _text_field(payload, name, warnings) for name in _TEXT_FIELDS}
    details = payload.get("user_details")
    if details is not None and not isinstance(details, dict):
        warnings.append(f"user_details: expected an object, got {_kind(details)}; ignored")
        details = None
    return RoutingContext(
        **texts,
        user_details=details or {},
        raw=payload,
        warnings=tuple(warnings),
    )


def _text_field(payload: dict[str, Any], name: str, warnings: list[str]) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if name in _ID_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        warnings.append(f"{name}: expected a string, got {_kind(value)}; ignored")
        return None
    value = value.strip()
    if len(value) > MAX_TEXT_FIELD_LENGTH:
        warnings.append(f"{name}: longer than {MAX_TEXT_FIELD_LENGTH} characters; ignored")
        return None
    return value or None


def _too_large(size: int) -> str:
    return f"metadata: {size} bytes is over the {MAX_METADATA_BYTES}-byte limit; ignored"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _kind(value: object) -> str:
    """The JSON name of a value's type, as a frontend developer would say it."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list() | tuple():
            return "array"
        case dict():
            return "object"
    return type(value).__name__
