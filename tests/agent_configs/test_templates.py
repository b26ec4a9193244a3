"""The placeholder renderer for instructions and greetings: lookups only, never code."""

import pytest
from pydantic import ValidationError

from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import AgentConfig
from agent_configs.templates import check_template, render, unknown_roots

VALUES = {
    "user_details": {
        "name": "Ada",
        "plan": {"tier": "gold", "seats": 3},
        "tags": ["a", "b"],
        "vip": True,
    },
    "variables": {"plan": "gold", "balance": 12.5, "empty": "", "nothing": None},
    "user_id": "u-42",
    "purpose": "support",
    "tenant": None,
    "session_id": "sess_1",
}


def test_paths_render_their_values_nested_ones_included() -> None:
    text = "Hi {{user_details.name}} ({{ user_id }}), {{purpose}} on {{user_details.plan.tier}}, {{session_id}}"
    assert render(text, VALUES) == "Hi Ada (u-42), support on gold, sess_1"


def test_numbers_and_booleans_render_as_json_writes_them_objects_as_compact_json() -> None:
    text = "{{variables.balance}} {{user_details.vip}} {{user_details.plan}} {{user_details.tags}} {{user_details.tags.1}}"
    assert render(text, VALUES) == '12.5 true {"tier":"gold","seats":3} ["a","b"] b'


def test_a_missing_null_or_empty_value_renders_as_nothing() -> None:
    text = "[{{variables.missing}}][{{variables.nothing}}][{{variables.empty}}][{{tenant}}][{{user_details.name.first}}]"
    assert render(text, VALUES) == "[][][][][]"


def test_a_declared_default_replaces_a_missing_null_or_empty_value_only() -> None:
    assert render('{{variables.tier | default: "basic"}}', VALUES) == "basic"
    assert render('{{variables.nothing|default:"none"}}', VALUES) == "none"
    assert render('{{ variables.empty | default: "blank" }}', VALUES) == "blank"
    assert render('{{variables.plan | default: "basic"}}', VALUES) == "gold"
    assert render('{{variables.x | default: "say \\"hi\\""}}', VALUES) == 'say "hi"'


def test_nothing_in_a_placeholder_runs_code() -> None:
    assert render("[{{__import__}}]", VALUES) == "[]"
    assert render("[{{user_details.__class__}}][{{variables.plan.__len__}}]", VALUES) == "[][]"
    assert (
        render("[{{ __import__('os').system('id') }}]", VALUES)
        == "[{{ __import__('os').system('id') }}]"
    )
    assert render("[{{ 7 * 7 }}]", VALUES) == "[{{ 7 * 7 }}]"


def test_braces_that_are_not_a_placeholder_stay_as_written() -> None:
    assert render("a {{user_details.name and more", VALUES) == "a {{user_details.name and more"
    assert render('json: {"a": {"b": 1}}', VALUES) == 'json: {"a": {"b": 1}}'
    assert render("{{user_details.name}} }} {{", VALUES) == "Ada }} {{"


def test_values_are_not_rendered_again() -> None:
    values = {"user_details": {"name": "{{user_id}}"}, "user_id": "u-1"}
    assert render("{{user_details.name}}", values) == "{{user_id}}"


def test_unknown_roots_are_listed_once_each() -> None:
    assert unknown_roots("{{foo.bar}} {{user_details.x}} {{foo.bar}} {{__import__}}") == [
        "foo.bar",
        "__import__",
    ]
    assert check_template("Hi {{user_details.name}}") == "Hi {{user_details.name}}"
    with pytest.raises(ValueError, match=r"unknown placeholder \{\{foo.bar\}\}"):
        check_template("Hi {{foo.bar}}")


def test_a_config_with_an_unknown_placeholder_root_is_refused_at_its_field() -> None:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert errors == []
    definition = configs[0].definition()
    for field in ("instructions", "greeting"):
        bad = definition | {field: "Hello there {{customer.name}}, how can I help you today?"}
        with pytest.raises(ValidationError) as caught:
            AgentConfig.model_validate(bad)
        assert [e["loc"] for e in caught.value.errors()] == [(field,)]
        assert "{{customer.name}}" in caught.value.errors()[0]["msg"]
    good = definition | {
        "greeting": 'Hi {{user_details.name}}, you are on {{variables.plan | default: "basic"}}'
    }
    assert AgentConfig.model_validate(good).greeting is not None
