"""Where the routing context comes from: dispatch, room, participant, attributes, in that order."""

import json

from agent_configs.routing.context import MAX_METADATA_BYTES
from worker.metadata import routing_context


def test_dispatch_metadata_wins_over_room_and_participant() -> None:
    context, source = routing_context(
        json.dumps({"purpose": "sales", "user_id": "u-1"}),
        json.dumps({"purpose": "support"}),
        json.dumps({"purpose": "onboarding"}),
    )
    assert (source, context.purpose, context.user_id) == ("job", "sales", "u-1")


def test_empty_sources_fall_through_to_the_participant() -> None:
    context, source = routing_context("", "", json.dumps({"agent_id": "sales-agent-v1"}))
    assert (source, context.agent_id) == ("participant", "sales-agent-v1")


def test_attributes_are_the_last_resort_and_may_carry_json_details() -> None:
    context, source = routing_context(
        None,
        None,
        None,
        {"purpose": "support", "user_details": '{"tier": "premium"}', "lk.agent.state": "x"},
    )
    assert source == "participant_attributes"
    assert context.user_details == {"tier": "premium"}
    assert "lk.agent.state" not in context.raw


def test_malformed_sources_are_skipped_but_their_problems_kept() -> None:
    context, source = routing_context(
        "{oops", json.dumps([1, 2]), json.dumps({"purpose": "support"})
    )
    assert source == "participant" and context.purpose == "support"
    assert len(context.warnings) == 2
    assert context.warnings[0].startswith("job: ") and context.warnings[1].startswith("room: ")


def test_nothing_anywhere_is_an_empty_context_not_an_error() -> None:
    context, source = routing_context(None, "", "", {})
    assert source is None and context.purpose is None and context.warnings == ()


def _nested_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def test_deeply_nested_user_details_in_attributes_is_dropped_not_raised() -> None:
    # json.loads raises RecursionError (not ValueError) past ~1000 levels: it used to escape
    # from the entrypoint and the room never got an agent.
    context, source = routing_context(
        None, None, None, {"purpose": "support", "user_details": _nested_object(3000)}
    )
    assert (source, context.purpose, context.user_details) == (
        "participant_attributes",
        "support",
        {},
    )
    assert context.warnings == (
        "participant_attributes: user_details: nested too deeply to parse; ignored",
    )


def test_oversized_user_details_in_attributes_is_not_parsed() -> None:
    details = json.dumps({"note": "n" * MAX_METADATA_BYTES})
    context, source = routing_context(None, None, None, {"user_id": "u-9", "user_details": details})
    assert (source, context.user_id, context.user_details) == ("participant_attributes", "u-9", {})
    assert context.warnings == (
        f"participant_attributes: user_details: {len(details)} bytes is over the 65536-byte limit; ignored",
    )


def test_attributes_whose_only_field_is_unusable_still_say_why() -> None:
    context, source = routing_context(None, None, None, {"user_details": _nested_object(3000)})
    assert source is None
    assert context.warnings == (
        "participant_attributes: user_details: nested too deeply to parse; ignored",
    )


def test_a_lone_surrogate_in_attribute_user_details_is_replaced() -> None:
    context, _ = routing_context(
        None, None, None, {"purpose": "sales", "user_details": '{"tier": "\\udfff"}'}
    )
    assert context.user_details == {"tier": "\ufffd"}
    assert context.warnings == (
        "participant_attributes: metadata: 1 lone UTF-16 surrogate(s) replaced with U+FFFD",
    )


def test_a_lone_surrogate_in_room_metadata_is_replaced_with_a_warning() -> None:
    context, source = routing_context(None, '{"agent_id": "\\udfff", "user_id": "u\\udfff"}')
    assert (source, context.agent_id, context.user_id) == ("room", "\ufffd", "u\ufffd")
    assert context.warnings == ("room: metadata: 2 lone UTF-16 surrogate(s) replaced with U+FFFD",)
