"""Structured turns against the real local LLM: filled, validated, or flagged as failed."""

import jsonschema

from agent_configs.files import DEFAULTS_DIR, load_config_file
from agent_configs.models import AgentConfig
from devstack import Endpoints
from devstack.services import reserve_port
from worker.providers.registry import ChatEndpoint
from worker.turns import Message, StructuredCaller, TurnFiller, summarize


def sales() -> AgentConfig:
    config = load_config_file(DEFAULTS_DIR / "sales.yaml")
    assert isinstance(config, AgentConfig)
    return config


def endpoint(base_url: str) -> ChatEndpoint:
    return ChatEndpoint("local", "smollm2-135m-instruct", base_url, "local", 0.0, 200, None)


HISTORY = [
    Message("assistant", "Hello! Thanks for your interest. What brings you here today?"),
    Message(
        "user", "We spend two days a month building reports by hand. What does your product cost?"
    ),
]
REPLY = "Pricing depends on team size. How many people build those reports today?"


async def test_a_turn_is_filled_and_valid_against_the_schema(endpoints: Endpoints) -> None:
    assert endpoints.local_llm_url
    caller = StructuredCaller([endpoint(endpoints.local_llm_url)])
    filled = await TurnFiller(caller, sales().turn_schema, "Sales Agent").fill(HISTORY, REPLY)
    assert filled.status == "ok", filled.error
    assert filled.fields["system_response"] == REPLY
    jsonschema.validate(filled.fields, sales().turn_schema.json_schema())
    assert caller.usage.completion_tokens > 0


async def test_an_unreachable_model_is_retried_once_then_flagged_failed() -> None:
    dead = f"http://127.0.0.1:{reserve_port(0, 'dead', 'UNUSED')}/v1"
    filled = await TurnFiller(
        StructuredCaller([endpoint(dead)]), sales().turn_schema, "Sales Agent"
    ).fill(HISTORY, REPLY)
    assert (filled.status, filled.attempts) == ("failed", 2)
    assert filled.fields == {"system_response": REPLY}
    assert "Connection" in (filled.error or "")


async def test_the_fallback_endpoint_fills_the_turn_when_the_primary_is_down(
    endpoints: Endpoints,
) -> None:
    assert endpoints.local_llm_url
    dead = f"http://127.0.0.1:{reserve_port(0, 'dead', 'UNUSED')}/v1"
    caller = StructuredCaller([endpoint(dead), endpoint(endpoints.local_llm_url)])
    assert (
        await TurnFiller(caller, sales().turn_schema, "Sales Agent").fill(HISTORY, REPLY)
    ).status == "ok"


async def test_summary_of_a_silent_session_needs_no_model() -> None:
    dead = f"http://127.0.0.1:{reserve_port(0, 'dead', 'UNUSED')}/v1"
    assert await summarize(StructuredCaller([endpoint(dead)]), HISTORY[:1], "Sales Agent") == (
        "The user did not say anything."
    )
