"""Room metadata -> RoutingContext: whatever a frontend sends, routing goes on."""

import dataclasses
import json
import random

import bson
import pytest

from agent_configs.routing import MAX_METADATA_BYTES, RoutingContext

FULL = {
    "agent_id": "sales-agent-v1",
    "purpose": "support",
    "user_id": "u-1",
    "user_details": {"tier": "premium", "is_new_user": False},
    "tenant": "acme",
}


@pytest.mark.parametrize("form", [json.dumps, lambda d: json.dumps(d).encode(), dict])
def test_text_bytes_and_objects_parse_alike(form) -> None:
    context = RoutingContext.from_metadata(form(FULL))
    assert context == RoutingContext(
        agent_id="sales-agent-v1",
        purpose="support",
        user_id="u-1",
        user_details={"tier": "premium", "is_new_user": False},
        tenant="acme",
        raw=FULL,
        warnings=(),
    )


@pytest.mark.parametrize("empty", [None, "", "   ", b"", {}])
def test_missing_metadata_is_an_empty_context_without_warnings(empty: object) -> None:
    assert RoutingContext.from_metadata(empty) == RoutingContext()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "warning"),
    [
        ("{purpose: support}", "metadata: not valid JSON"),
        ('["support"]', "metadata: expected a JSON object, got array"),
        ('"support"', "metadata: expected a JSON object, got string"),
        ("42", "metadata: expected a JSON object, got number"),
        (b"\xff\xfe{}", "metadata: not UTF-8"),
        ("[" * 60_000, "metadata: not valid JSON"),
        (42, "metadata: expected JSON text, got int"),
    ],
)
def test_unusable_payload_gives_an_empty_context_and_says_why(
    payload: object, warning: str
) -> None:
    context = RoutingContext.from_metadata(payload)  # type: ignore[arg-type]
    assert (context.purpose, context.user_details, context.raw) == (None, {}, {})
    assert len(context.warnings) == 1 and context.warnings[0].startswith(warning)


def test_wrong_field_types_are_dropped_one_by_one_and_the_rest_is_kept() -> None:
    context = RoutingContext.from_metadata(
        json.dumps({"purpose": 5, "user_details": "premium", "agent_id": ["a"], "user_id": "u-7"})
    )
    assert (context.purpose, context.agent_id, context.user_details) == (None, None, {})
    assert context.user_id == "u-7"
    assert context.warnings == (
        "agent_id: expected a string, got array; ignored",
        "purpose: expected a string, got number; ignored",
        "user_details: expected an object, got string; ignored",
    )


def test_numeric_ids_are_read_as_text_but_booleans_are_not() -> None:
    context = RoutingContext.from_metadata({"user_id": 123, "tenant": True})
    assert context.user_id == "123"
    assert context.tenant is None and context.warnings == (
        "tenant: expected a string, got boolean; ignored",
    )


def test_blank_strings_count_as_absent_and_values_are_trimmed() -> None:
    context = RoutingContext.from_metadata({"purpose": "  ", "agent_id": " sales-agent-v1 "})
    assert (context.purpose, context.agent_id, context.warnings) == (None, "sales-agent-v1", ())


def test_overlong_text_field_is_dropped() -> None:
    context = RoutingContext.from_metadata({"purpose": "x" * 300})
    assert context.purpose is None
    assert context.warnings == ("purpose: longer than 256 characters; ignored",)


def _payload_of_size(size: int) -> str:
    skeleton = json.dumps({"purpose": "sales", "user_details": {"note": ""}})
    return skeleton.replace('""', '"' + "n" * (size - len(skeleton)) + '"')


def test_payload_at_the_limit_is_read() -> None:
    payload = _payload_of_size(MAX_METADATA_BYTES)
    assert len(payload.encode()) == MAX_METADATA_BYTES
    context = RoutingContext.from_metadata(payload)
    assert context.purpose == "sales" and context.warnings == ()


@pytest.mark.parametrize("form", [str, str.encode, json.loads])
def test_payload_over_64_kib_is_ignored_with_a_warning(form) -> None:
    context = RoutingContext.from_metadata(form(_payload_of_size(MAX_METADATA_BYTES + 1)))
    assert context.purpose is None and context.raw == {}
    assert context.warnings == (
        f"metadata: {MAX_METADATA_BYTES + 1} bytes is over the 65536-byte limit; ignored",
    )


def test_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    for _ in range(500):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        RoutingContext.from_metadata(blob)
        RoutingContext.from_metadata(blob.decode("latin-1"))


def test_context_is_frozen() -> None:
    context = RoutingContext.from_metadata(json.dumps(FULL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.purpose = "sales"  # type: ignore[misc]


def test_a_lone_surrogate_in_any_string_is_replaced_and_the_payload_becomes_encodable() -> None:
    # JSON may escape a lone UTF-16 surrogate; json.loads turns it into a str that neither
    # UTF-8 nor BSON can encode, so one such character used to lose a session's records.
    payload = (
        '{"agent_id": "\\udfff", "user_id": "u\\udfff", "purpose": "sales",'
        ' "user_details": {"n\\ud800me": ["ok", {"deep": "x\\udc00"}], "mood": "\\ud83d\\ude00"}}'
    )
    context = RoutingContext.from_metadata(payload)
    assert (context.agent_id, context.user_id, context.purpose) == ("\ufffd", "u\ufffd", "sales")
    # a surrogate pair is one real character (json.loads joins it) and stays as it is
    assert context.user_details == {"n\ufffdme": ["ok", {"deep": "x\ufffd"}], "mood": "\U0001f600"}
    assert context.warnings == ("metadata: 4 lone UTF-16 surrogate(s) replaced with U+FFFD",)
    bson.encode({"raw": context.raw, "user_id": context.user_id})  # raises InvalidStringData before


def test_a_lone_surrogate_in_an_object_payload_is_replaced_too() -> None:
    context = RoutingContext.from_metadata({"user_id": "u\udfff", "user_details": {"k": "\ud83d"}})
    assert (context.user_id, context.user_details) == ("u\ufffd", {"k": "\ufffd"})
    assert len(context.warnings) == 1
