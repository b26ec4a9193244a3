"""Suite models and expectation checks, without any service."""

from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from agent_configs.evals import (
    FieldCheck,
    GreetingExpect,
    Suite,
    SuiteFileError,
    TurnExpect,
    load_suite_dir,
    load_suite_file,
)
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import describe_validation_error
from evals.cli import EXIT_UNUSABLE, app
from evals.expectations import NO_JUDGE, ObservedTurn, evaluate_greeting, evaluate_turn, passed
from evals.junit import junit_xml


def suite(**turn_expect: Any) -> dict[str, Any]:
    return {
        "agent_id": "support-agent-v1",
        "scenarios": [{"name": "one", "turns": [{"user": "hi", "expect": turn_expect}]}],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        Suite.model_validate(data)
    return describe_validation_error(raised.value)


def test_a_misspelt_expectation_is_refused_with_its_path() -> None:
    (problem,) = problems(suite(reply_contain=["hello"]))
    assert problem.startswith("scenarios.0.turns.0.expect.reply_contain:"), problem


def test_a_bad_regex_and_an_empty_field_check_name_their_fields() -> None:
    found = problems(suite(reply_matches="(", fields={"urgency": {}}))
    assert any(p.startswith("scenarios.0.turns.0.expect.reply_matches:") for p in found), found
    assert any("regular expression" in p for p in found), found
    assert any(p.startswith("scenarios.0.turns.0.expect.fields.urgency:") for p in found), found


def test_a_scenario_needs_turns_a_bounded_repeat_and_a_unique_name() -> None:
    data = suite()
    data["scenarios"][0] |= {"turns": [], "repeat": 0}
    data["scenarios"].append(data["scenarios"][0] | {"turns": [{"user": "x"}], "repeat": 1})
    found = problems(data)
    assert any(p.startswith("scenarios.0.turns:") for p in found), found
    assert any(p.startswith("scenarios.0.repeat:") for p in found), found
    data["scenarios"][0] |= {"turns": [{"user": "x"}], "repeat": 1}
    assert any("listed twice" in p for p in problems(data))


def test_a_range_upside_down_is_refused() -> None:
    with pytest.raises(ValidationError, match="above max"):
        FieldCheck(min=5, max=1)


def test_a_suite_file_error_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("agent_id: support-agent-v1\nscenarios: [{name: a, turns: [{user: ''}]}]\n")
    with pytest.raises(SuiteFileError) as raised:
        load_suite_file(path)
    assert raised.value.problems[0].startswith("scenarios.0.turns.0.user:")


def test_every_built_in_type_ships_a_valid_suite() -> None:
    suites, errors = load_suite_dir()
    assert not errors
    configs, _ = load_config_dir(DEFAULTS_DIR)
    assert sorted(s.agent_id for s in suites) == sorted(c.agent_id for c in configs)
    # Each suite's field checks name fields of its type's schema (a renamed field breaks it).
    schemas = {c.agent_id: {f.name for f in c.turn_schema.fields} for c in configs}
    for s in suites:
        for scenario in s.scenarios:
            for turn in scenario.turns:
                assert set(turn.expect.fields) <= schemas[s.agent_id], s.agent_id


def observed(reply: str = "Happy to help.", **payload: Any) -> ObservedTurn:
    base = {"agent_id": "support-agent-v1", "fields": {}, "tool_calls": [], "latency_ms": {}}
    return ObservedTurn(user="hi", payload=base | payload, reply=reply)


def statuses(expect: TurnExpect, turn: ObservedTurn) -> dict[str, str]:
    return {o.expectation: o.status for o in evaluate_turn(expect, turn)}


def test_field_checks_pass_and_fail_on_what_the_turn_held() -> None:
    expect = TurnExpect.model_validate(
        {
            "fields": {
                "urgency": {"one_of": ["low", "high"], "present": True},
                "score": {"min": 1, "max": 10},
                "note": {"matches": "^ref-\\d+$"},
                "done": {"equals": False},
                "gone": {"present": False},
            }
        }
    )
    good = observed(fields={"urgency": "low", "score": 10, "note": "ref-12", "done": False})
    assert set(statuses(expect, good).values()) == {"passed"}
    bad = observed(fields={"urgency": "urgent", "score": 11, "note": "x", "gone": 1})
    assert statuses(expect, bad) == {
        "fields.urgency.present": "passed",
        "fields.urgency.one_of": "failed",
        "fields.score.min": "passed",
        "fields.score.max": "failed",
        "fields.note.matches": "failed",
        "fields.done.equals": "failed",
        "fields.gone.present": "failed",
    }
    (one_of,) = [o for o in evaluate_turn(expect, bad) if o.expectation == "fields.urgency.one_of"]
    assert "'urgent'" in one_of.detail


def test_reply_tool_hand_off_agent_and_latency_checks() -> None:
    expect = TurnExpect.model_validate(
        {
            "agent": "support-agent-v1",
            "reply_contains": ["HAPPY"],
            "reply_not_contains": ["sorry"],
            "reply_matches": "help\\.$",
            "reply_not_empty": True,
            "tool_called": [{"name": "lookup", "arguments": {"order": 7}}],
            "handoff_to": "sales-agent-v1",
            "first_text_under_ms": 500,
        }
    )
    turn = observed(
        tool_calls=[{"name": "lookup", "arguments": {"order": 7, "x": 1}}],
        latency_ms={"first_text": 120},
    )
    turn.handoffs = [{"to_agent_id": "sales-agent-v1"}]
    assert set(statuses(expect, turn).values()) == {"passed"}
    slow = observed(
        "Sorry.",
        agent_id="sales-agent-v1",
        tool_calls=[{"name": "lookup", "arguments": {"order": 8}}],
        latency_ms={"first_text": 900},
    )
    held = statuses(expect, slow)
    assert [name for name, status in held.items() if status == "passed"] == ["reply_not_empty"]
    assert len(held) == 8


def test_a_rubric_without_a_judge_is_skipped_and_does_not_fail_the_attempt() -> None:
    outcomes = evaluate_turn(TurnExpect(rubric="Polite and on topic."), observed())
    assert [(o.expectation, o.status, o.detail) for o in outcomes] == [
        ("rubric", "skipped", NO_JUDGE)
    ]
    assert passed(outcomes)


def test_greeting_checks_are_named_as_the_greetings() -> None:
    outcomes = evaluate_greeting(GreetingExpect(reply_contains=["support"]), "Hi, sales here.")
    assert [(o.expectation, o.status) for o in outcomes] == [
        ("greeting.reply_contains[0]", "failed")
    ]


def test_the_readme_example_suite_is_a_valid_suite() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("\n## Evals\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    Suite.model_validate(yaml.safe_load(example))


def test_junit_names_the_failed_scenario_its_expectations_and_what_was_skipped() -> None:
    scenario = {
        "name": "greets",
        "passed": False,
        "pass_rate": 0.5,
        "required_pass_rate": 1.0,
        "wall_time_s": 1.5,
        "failures": [{"attempt": 1, "expectation": "greeting.reply_contains[0]", "detail": "x"}],
        "skipped": ["turns[0].rubric"],
    }
    run = {
        "agent_id": "support-agent-v1",
        "version": 3,
        "wall_time_s": 2.0,
        "scenarios": [scenario],
    }
    root = ElementTree.fromstring(junit_xml([run]))
    (case,) = root.iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("support-agent-v1@v3", "greets")
    failure = case.find("failure")
    assert failure is not None and "attempt 1: greeting.reply_contains[0]: x" in (
        failure.text or ""
    )
    assert "turns[0].rubric" in (case.findtext("system-out") or "")
    assert root.find("testsuite").get("failures") == "1"


def test_the_command_refuses_a_version_without_an_agent_before_it_runs_anything() -> None:
    result = CliRunner().invoke(
        app,
        ["run", "--version", "2"],
        env={"MONGO_URI": "mongodb://127.0.0.1:9/", "LIVEKIT_URL": "ws://127.0.0.1:9"},
    )
    assert result.exit_code == EXIT_UNUSABLE
    assert "--version needs --agent" in result.output


def test_the_command_refuses_a_repeat_out_of_bounds_naming_the_option() -> None:
    result = CliRunner().invoke(app, ["run", "--repeat", "0"])
    assert result.exit_code == 2 and "--repeat" in result.output


def test_a_stored_suite_reads_back_the_same_an_explicit_null_included() -> None:
    written = Suite.model_validate(suite(fields={"follow_up_action": {"equals": None}}))
    read = Suite.from_document(written.document())
    assert read.model_dump() == written.model_dump()
    check = read.scenarios[0].turns[0].expect.fields["follow_up_action"]
    assert "equals" in check.model_fields_set
