"""Where the routing context comes from: dispatch, room, participant, attributes, in that order."""

import json

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
        None, None, None, {"purpose": "support", "user_details": '{"tier": "premium"}', "lk.agent.state": "x"}
    )
    assert source == "participant_attributes"
    assert context.user_details == {"tier": "premium"}
    assert "lk.agent.state" not in context.raw


def test_malformed_sources_are_skipped_but_their_problems_kept() -> None:
    context, source = routing_context("{oops", json.dumps([1, 2]), json.dumps({"purpose": "support"}))
    assert source == "participant" and context.purpose == "support"
    assert len(context.warnings) == 2
    assert context.warnings[0].startswith("job: ") and context.warnings[1].startswith("room: ")


def test_nothing_anywhere_is_an_empty_context_not_an_error() -> None:
    context, source = routing_context(None, "", "", {})
    assert source is None and context.purpose is None and context.warnings == ()
