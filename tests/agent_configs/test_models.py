"""The agent-config model: what operators can write, and what they are told when it is wrong."""

import jsonschema
import pytest
from pydantic import ValidationError

from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import (
    SYSTEM_RESPONSE,
    AgentConfig,
    TurnSchema,
    describe_validation_error,
)
from agent_configs.secret_guard import secret_kind
from tests.factories import support_config, support_definition


def problems(**changes: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate(support_definition(**changes))
    return describe_validation_error(caught.value)


def test_builtin_agent_types_match_the_product_brief() -> None:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert errors == []
    shapes = {c.agent_id: (c.turn_schema.schema_id, len(c.turn_schema.fields)) for c in configs}
    assert shapes == {
        "support-agent-v1": ("support_turn_v1", 7),
        "sales-agent-v1": ("sales_turn_v1", 8),
        "onboarding-agent-v1": ("onboarding_turn_v1", 6),
        "pte-interview-agent-v1": ("interview_turn_v1", 5),
    }
    by_id = {c.agent_id: c for c in configs}
    support_fields = by_id["support-agent-v1"].turn_schema.fields
    category = next(f for f in support_fields if f.name == "issue_category")
    assert category.enum == ["technical", "billing", "account", "feature_request", "other"]
    score = next(
        f for f in by_id["sales-agent-v1"].turn_schema.fields if f.name == "qualification_score"
    )
    assert (score.min, score.max) == (0, 100)
    for config in configs:
        assert config.turn_schema.field_names[0] == SYSTEM_RESPONSE
        assert config.greeting and len(config.instructions) > 400


def test_errors_name_the_field_path() -> None:
    assert any(
        p.startswith("llm.temperature:") for p in problems(llm={"model": "m", "temperature": 5})
    )
    assert any(
        p.startswith("llm.temprature:") and "Extra inputs" in p
        for p in problems(llm={"model": "m", "temprature": 0.2})
    )
    assert any(p.startswith("agent_id:") for p in problems(agent_id="Support Agent!"))
    assert any(p.startswith("status:") for p in problems(status="deleted"))


def test_turn_field_constraints_must_fit_their_type() -> None:
    def schema_problems(field: dict[str, object]) -> list[str]:
        return problems(turn_schema={"schema_id": "t_v1", "fields": [field]})

    enum_without_values = schema_problems({"name": "mood", "type": "enum", "description": "d"})
    assert any(
        "turn_schema.fields.0" in p and "needs `enum` values" in p for p in enum_without_values
    )
    inverted = schema_problems(
        {"name": "score", "type": "int", "min": 10, "max": 1, "description": "d"}
    )
    assert any("greater than `max`" in p for p in inverted)
    bounds_on_text = schema_problems(
        {"name": "note", "type": "string", "min": 1, "description": "d"}
    )
    assert any("only apply to int and number" in p for p in bounds_on_text)
    not_text = schema_problems({"name": "system_response", "type": "bool", "description": "d"})
    assert any("must be a required string" in p for p in not_text)


def test_voice_agents_need_speech_providers() -> None:
    assert any("voice needs stt" in p for p in problems(stt=None))
    text_only = support_config(stt=None, tts=None, vad=None, modalities=["text"])
    assert text_only.stt is None


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        (
            "instructions",
            "Use the key sk-proj-4fT9xQ2mLr8ZpV7kW3nB to call the API. " * 2,
            "OpenAI",
        ),
        ("greeting", "Hello! internal token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z", "GitHub"),
        ("description", "deepgram 3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a", "opaque token"),
    ],
)
def test_secret_values_are_rejected_where_they_appear(field: str, value: str, kind: str) -> None:
    found = problems(**{field: value})
    assert any(p.startswith(f"{field}:") and kind in p and "api_key_env" in p for p in found)


def test_secret_in_nested_spec_is_rejected_with_its_path() -> None:
    in_url = problems(
        llm={"model": "m", "base_url": "https://llm.example.com/v1?api_key=abcdef123456"}
    )
    assert any(p.startswith("llm.base_url:") for p in in_url)
    in_options = problems(tts={"model": "aura", "options": {"api_key": "value"}})
    assert any(p.startswith("tts.options:") and "would hold a secret" in p for p in in_options)
    fallback = problems(
        llm={"model": "m", "fallback": [{"model": "sk-live-0123456789abcdefABCDEF"}]}
    )
    assert any(p.startswith("llm.fallback.0.model:") for p in fallback)


def test_key_names_are_fine_and_prose_is_not_a_secret() -> None:
    config = support_config(
        llm={"provider": "openai", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"}
    )
    assert config.llm.api_key_env == "OPENAI_API_KEY"
    assert any(
        p.startswith("llm.api_key_env:")
        for p in problems(llm={"model": "m", "api_key_env": "sk-x"})
    )
    assert secret_kind("Escalate billing disputes over 500 dollars to a human agent.") is None
    assert secret_kind("support-agent-v1 uses schema support_turn_v1") is None


def test_system_response_is_added_to_every_schema() -> None:
    schema = TurnSchema(
        schema_id="mood_v1",
        fields=[
            {"name": "mood", "type": "enum", "enum": ["calm", "upset"], "description": "Mood."}
        ],
    )
    assert schema.field_names == [SYSTEM_RESPONSE, "mood"]


def test_turn_json_schema_and_model_agree() -> None:
    sales = next(c for c in load_config_dir(DEFAULTS_DIR)[0] if c.agent_id == "sales-agent-v1")
    schema = sales.turn_schema
    good = {
        "system_response": "What made you look for a new tool this quarter?",
        "sales_stage": "discovery",
        "customer_intent": "researching",
        "pain_points": ["manual reporting"],
        "qualification_score": 35,
        "objections_raised": [],
        "budget_status": "unknown",
        "recommended_next_step": "continue_discovery",
    }
    jsonschema.validate(good, schema.json_schema())
    assert schema.validate_turn(good) == good

    bad_score = good | {"qualification_score": 140}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_score, schema.json_schema())
    with pytest.raises(ValidationError) as caught:
        schema.validate_turn(bad_score)
    assert describe_validation_error(caught.value)[0].startswith("qualification_score:")

    for broken in (
        good | {"sales_stage": "haggling"},
        good | {"surprise": 1},
        {"system_response": "hi"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema.json_schema())
        with pytest.raises(ValidationError):
            schema.validate_turn(broken)


def test_optional_turn_fields_accept_null() -> None:
    support = support_config()
    turn = {
        "system_response": "Let's reset your password.",
        "issue_category": "account",
        "sentiment": "neutral",
        "issue_resolved": False,
        "escalation_needed": False,
        "urgency": "medium",
        "follow_up_action": None,
    }
    jsonschema.validate(turn, support.turn_schema.json_schema())
    assert support.turn_schema.validate_turn(turn)["follow_up_action"] is None


def test_input_and_context_limits_have_defaults_and_bounds() -> None:
    config = AgentConfig.model_validate(support_definition())
    assert (
        config.max_user_message_chars,
        config.max_context_chars,
        config.max_transcript_chars,
    ) == (
        4_000,
        24_000,
        200_000,
    )
    assert any(
        p.startswith("max_user_message_chars:") for p in problems(max_user_message_chars=10**6)
    )
    assert any(p.startswith("max_context_chars:") for p in problems(max_context_chars=10))
    assert any(p.startswith("max_transcript_chars:") for p in problems(max_transcript_chars=10**8))


def test_the_message_being_answered_must_fit_the_context_and_the_transcript() -> None:
    (problem,) = problems(max_user_message_chars=5_000, max_context_chars=4_000)
    assert "max_context_chars (4000) is less than max_user_message_chars (5000)" in problem
    (problem,) = problems(max_user_message_chars=5_000, max_transcript_chars=4_000)
    assert "max_transcript_chars (4000) is less than max_user_message_chars (5000)" in problem


def test_the_llm_unavailable_message_has_a_default_and_a_bounded_wait() -> None:
    config = AgentConfig.model_validate(support_definition())
    assert config.llm_unavailable.after_s == 8.0 and config.llm_unavailable.message.startswith(
        "Sorry"
    )
    assert any(
        p.startswith("llm_unavailable.after_s:") for p in problems(llm_unavailable={"after_s": 0.1})
    )
    assert any(
        p.startswith("llm_unavailable.message:") for p in problems(llm_unavailable={"message": ""})
    )
    assert any(
        p.startswith("llm_unavailable.afer_s:") for p in problems(llm_unavailable={"afer_s": 3})
    )
