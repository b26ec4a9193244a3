"""Suite additions without any service: simulated callers, voice scenarios, session ends, and
how a simulated caller's answer becomes its line."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agent_configs.evals import Suite
from agent_configs.models import describe_validation_error
from evals.caller import CallerLine, spoken_line

SIMULATE = {"persona": "A hurried customer.", "goal": "Get a refund.", "turns": 3}


def scenario(*turns: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"agent_id": "support-agent-v1", "scenarios": [{"name": "s", "turns": turns, **more}]}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        Suite.model_validate(data)
    return describe_validation_error(raised.value)


def test_a_turn_is_a_scripted_line_or_a_simulated_caller_never_both_nor_neither() -> None:
    (both,) = problems(scenario({"user": "hi", "simulate": SIMULATE}))
    assert both.startswith("scenarios.0.turns.0: ") and "`user`" in both and "`simulate`" in both
    assert "has both" in both
    (neither,) = problems(scenario({"expect": {"reply_not_empty": True}}))
    assert neither.startswith("scenarios.0.turns.0: ") and "has neither" in neither
    parsed = Suite.model_validate(scenario({"simulate": SIMULATE}))
    assert parsed.scenarios[0].turns[0].simulate is not None


def test_a_simulation_has_1_to_20_turns_a_persona_a_goal_and_no_unknown_key() -> None:
    found = problems(scenario({"simulate": SIMULATE | {"turns": 21}}))
    assert [p.split(":")[0] for p in found] == ["scenarios.0.turns.0.simulate.turns"]
    found = problems(scenario({"simulate": SIMULATE | {"turns": 0}}))
    assert [p.split(":")[0] for p in found] == ["scenarios.0.turns.0.simulate.turns"]
    found = problems(scenario({"simulate": {"personna": "x", "goal": "y", "turns": 1}}))
    assert {p.split(":")[0] for p in found} == {
        "scenarios.0.turns.0.simulate.persona",
        "scenarios.0.turns.0.simulate.personna",
    }


def test_session_ended_takes_a_reason_or_null_and_only_on_the_last_turn() -> None:
    ends = {"user": "bye", "expect": {"session_ended": {"reason": "agent_ended"}}}
    any_reason = {"user": "bye", "expect": {"session_ended": {"reason": None}}}
    parsed = Suite.model_validate(scenario({"user": "hi"}, any_reason))
    assert parsed.scenarios[0].turns[1].expect.session_ended is not None
    assert Suite.model_validate(scenario(ends)).scenarios[0].turns[0].expect.session_ended
    (early,) = problems(scenario(ends, {"user": "still there?"}))
    assert early.startswith("scenarios.0: turns.0.expect.session_ended: only the last turn")
    (typo,) = problems(scenario({"user": "bye", "expect": {"session_ended": {"why": "x"}}}))
    assert typo.startswith("scenarios.0.turns.0.expect.session_ended.why:")


def test_a_scenario_is_text_or_voice_and_a_voice_one_may_not_ask_for_a_chat_only_session() -> None:
    assert Suite.model_validate(scenario({"user": "hi"})).scenarios[0].modality == "text"
    voice = Suite.model_validate(scenario({"user": "hi"}, modality="voice"))
    assert voice.scenarios[0].modality == "voice"
    (bad,) = problems(scenario({"user": "hi"}, modality="video"))
    assert bad.startswith("scenarios.0.modality:")
    (chat_only,) = problems(
        scenario({"user": "hi"}, modality="voice", metadata={"modality": "text"})
    )
    assert chat_only.startswith("scenarios.0: metadata.modality:")


def test_the_readme_example_of_voice_simulate_and_session_ended_is_a_valid_suite() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("\n## Evals\n", 1)[1].split("\n## ", 1)[0]
    (example,) = [block for block in section.split("```yaml\n")[1:] if "simulate:" in block]
    suite = Suite.model_validate(yaml.safe_load(example.split("```", 1)[0]))
    (scenario,) = suite.scenarios
    assert scenario.modality == "voice" and scenario.turns[0].simulate is not None
    assert scenario.turns[-1].expect.session_ended is not None
    # As stored in eval_suites (and PUT through the admin API), it reads back the same.
    assert Suite.from_document(suite.document()) == suite


def test_a_caller_line_is_its_first_line_without_label_quotes_or_the_done_marker() -> None:
    assert spoken_line('Caller: "I was billed twice."\nAgent: sorry') == CallerLine(
        "I was billed twice.", False
    )
    assert spoken_line("Thanks, bye. [DONE]") == CallerLine("Thanks, bye.", True)
    assert spoken_line("[done]") == CallerLine("", True)
    assert spoken_line("  \n") == CallerLine("", True)
