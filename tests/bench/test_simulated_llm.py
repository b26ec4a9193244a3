"""The simulated model endpoint (bench/simulated_llm.py), asked the way the workers ask it.

Service-free and fast: the simulator runs in-process on port 0, at a short time to first token
and a fast token rate. Time is asserted from below (a token is never early) and only loosely
from above, so a busy 2-core machine cannot make these fail.
"""

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from livekit.agents import llm as lk_llm
from livekit.plugins import openai as lk_openai
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from agent_configs.files import DEFAULTS_DIR, load_config_dir
from bench.simulated_llm import (
    SimulatedLLM,
    count_tokens,
    example_of,
    start_simulated_llm,
    tokenize,
)
from worker.turn_stream import response_format

TTFT_S = 0.1
TOKENS_PER_S = 400.0
LOOKUP_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "minLength": 8},
                "include_items": {"type": "boolean"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "required": ["order_id", "limit"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatedLLM]:
    async with SimulatedLLM(ttft_s=TTFT_S, tokens_per_s=TOKENS_PER_S) as running:
        yield running


@pytest.fixture
async def client(simulator: SimulatedLLM) -> AsyncIterator[AsyncOpenAI]:
    async with openai_client(simulator.base_url) as opened:
        yield opened


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You help."}, {"role": "user", "content": text}]


def openai_client(base_url: str) -> AsyncOpenAI:
    # trust_env off: a proxy from the environment must not stand between us and loopback
    http = DefaultAsyncHttpxClient(trust_env=False)
    return AsyncOpenAI(base_url=base_url, api_key="unused", http_client=http, max_retries=0)


async def create(client: AsyncOpenAI, **request: Any) -> Any:
    """One completion (typed loosely: the requests are plain dicts, as the workers send)."""
    return await client.chat.completions.create(model="sim", **request)


async def timed_stream(client: AsyncOpenAI, **request: Any) -> tuple[list[float], str, Any]:
    """Seconds from the request to each content token, the text, and the last chunk."""
    started = time.monotonic()
    stream = await create(client, stream=True, **request)
    arrivals: list[float] = []
    text = ""
    last = None
    async for chunk in stream:
        last = chunk
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            text += chunk.choices[0].delta.content
    return arrivals, text, last


def test_the_tokenizer_splits_text_into_word_pieces_that_join_back_into_it() -> None:
    text = ' {"system_response":"Happy to help, order 123456."}  '
    assert "".join(tokenize(text)) == text
    assert tokenize("Happy to help.") == ["Happy", " to", " help", "."]
    # JSON punctuation runs and identifiers as a BPE tokenizer merges them: the reply's
    # prefix costs 4 tokens (as with GPT-2's BPE), not 10
    assert tokenize('{"system_response":"') == ['{"', "system", "_response", '":"']
    assert tokenize("Reference 1234567") == ["Reference", " 123", "456", "7"]
    assert count_tokens("") == 0


async def test_the_first_token_comes_after_the_ttft_and_the_rest_at_the_token_rate(
    client: AsyncOpenAI,
) -> None:
    arrivals, text, _ = await timed_stream(client, messages=user("Where is my parcel?"))
    tokens = count_tokens(text)
    assert len(arrivals) == tokens > 10
    assert arrivals[0] >= TTFT_S
    assert arrivals[-1] >= TTFT_S + (tokens - 1) / TOKENS_PER_S - 0.005
    assert arrivals[0] < TTFT_S + 2.0


async def test_the_same_message_gets_the_same_reply_and_another_message_another(
    client: AsyncOpenAI,
) -> None:
    first = await create(client, messages=user("Hello there"))
    again = await create(client, messages=user("Hello there"))
    other = await create(client, messages=user("Cancel it"))
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"


async def test_a_json_schema_answer_is_valid_for_the_turn_schema_and_starts_with_the_reply(
    client: AsyncOpenAI,
) -> None:
    configs = load_config_dir(DEFAULTS_DIR)[0]
    for config in configs:
        wanted = response_format(config.turn_schema, 64, bounded=True)
        _, text, last = await timed_stream(
            client, messages=user("I need help"), response_format=wanted
        )
        assert last.choices[0].finish_reason == "stop"
        assert text.startswith('{"system_response":"'), text
        assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
        jsonschema.validate(json.loads(text), wanted["json_schema"]["schema"])


def test_simplest_values_respect_lengths_bounds_items_and_references() -> None:
    schema = {
        "type": "object",
        "$defs": {"Kind": {"type": "string", "enum": [None, "a", "b"]}},
        "properties": {
            "code": {"type": "string", "minLength": 12, "maxLength": 20},
            "tiny": {"type": "string", "maxLength": 2},
            "count": {"type": "integer", "exclusiveMinimum": 4},
            "below": {"type": "number", "maximum": -3},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"$ref": "#/$defs/Kind"},
            "either": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 7}]},
        },
        "required": ["code", "tiny", "count", "below", "tags", "kind", "either"],
        "additionalProperties": False,
    }
    value = example_of(schema)
    jsonschema.validate(value, schema)
    assert value["kind"] == "a" and value["either"] == 7


async def test_a_tool_call_is_streamed_when_tool_choice_requires_one(client: AsyncOpenAI) -> None:
    stream = await create(
        client,
        stream=True,
        messages=user("Where is my order?"),
        tools=[LOOKUP_TOOL],
        tool_choice="required",
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        assert not choice.delta.content
        for call in choice.delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            entry["name"] += (call.function.name or "") if call.function else ""
            entry["arguments"] += (call.function.arguments or "") if call.function else ""
    assert finish == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["lookup_order"]
    assert calls[0]["id"]
    parameters = LOOKUP_TOOL["function"]["parameters"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), parameters)


async def test_a_message_that_says_call_a_tool_gets_that_call_and_its_result_gets_a_reply(
    client: AsyncOpenAI,
) -> None:
    messages = user("Please call lookup_order for me")
    called = await create(client, messages=messages, tools=[LOOKUP_TOOL])
    message = called.choices[0].message
    assert called.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup_order"
    call = message.tool_calls[0]
    answered = await create(
        client,
        tools=[LOOKUP_TOOL],
        messages=[
            *messages,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
        ],
    )
    assert answered.choices[0].finish_reason == "stop"
    assert answered.choices[0].message.content
    unasked = await create(client, messages=user("Where is my order?"), tools=[LOOKUP_TOOL])
    assert unasked.choices[0].finish_reason == "stop"


async def test_usage_counts_match_the_stats_by_kind(
    client: AsyncOpenAI, simulator: SimulatedLLM
) -> None:
    wanted = response_format(load_config_dir(DEFAULTS_DIR)[0][0].turn_schema, 64, bounded=True)
    usages = []
    for request in (
        {"messages": user("One")},
        {"messages": user("Two"), "response_format": wanted},
        {"messages": user("Three"), "tools": [LOOKUP_TOOL], "tool_choice": "required"},
    ):
        _, _, last = await timed_stream(client, stream_options={"include_usage": True}, **request)
        assert last.choices == [] and last.usage is not None
        usages.append(last.usage)
    plain = await create(client, messages=user("Four"))
    assert plain.usage is not None
    usages.append(plain.usage)
    stats = simulator.stats.as_json()
    assert stats["requests"] == 4 and stats["streamed_requests"] == 3
    assert stats["prompt_tokens"] == sum(u.prompt_tokens for u in usages)
    assert stats["completion_tokens"] == sum(u.completion_tokens for u in usages)
    assert stats["tool_call_responses"] == 1 and stats["json_schema_responses"] == 1
    by_kind = stats["by_kind"]
    assert by_kind["reply"]["requests"] == 2
    assert by_kind["json_schema"]["completion_tokens"] == usages[1].completion_tokens
    assert by_kind["tools"]["prompt_tokens"] == usages[2].prompt_tokens
    assert stats["in_flight"] == 0 and stats["max_in_flight"] == 1
    assert usages[1].prompt_tokens > usages[0].prompt_tokens  # the schema is billed


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(client: AsyncOpenAI) -> None:
    for limit_name in ("max_tokens", "max_completion_tokens"):
        _, text, last = await timed_stream(
            client,
            messages=user("Tell me everything"),
            stream_options={"include_usage": True},
            **{limit_name: 5},
        )
        assert count_tokens(text) == 5 and last.usage.completion_tokens == 5
    cut = await create(client, messages=user("Tell me everything"), max_tokens=3)
    assert cut.choices[0].finish_reason == "length"
    assert count_tokens(cut.choices[0].message.content or "") == 3


async def test_fifty_concurrent_streams_take_about_as_long_as_one() -> None:
    # the capacity bench's pace: 300 ms to the first token, then 50 tokens a second
    simulator = SimulatedLLM(ttft_s=0.3, tokens_per_s=50.0)
    async with (
        simulator,
        openai_client(simulator.base_url) as client,
    ):
        await concurrent_streams(client, simulator)


async def concurrent_streams(client: AsyncOpenAI, simulator: SimulatedLLM) -> None:
    started = time.monotonic()
    await timed_stream(client, messages=user("Alone"))
    single = time.monotonic() - started
    started = time.monotonic()
    results = await asyncio.gather(
        *(timed_stream(client, messages=user(f"Session {i}")) for i in range(50))
    )
    together = time.monotonic() - started
    assert all(last.choices[0].finish_reason == "stop" for _, _, last in results)
    assert simulator.stats.as_json()["max_in_flight"] == 50
    assert together < 10 * single


async def test_livekit_s_openai_plugin_streams_a_reply_from_it(simulator: SimulatedLLM) -> None:
    model = lk_openai.LLM(model="sim", base_url=simulator.base_url, api_key="unused")
    context = lk_llm.ChatContext()
    context.add_message(role="user", content="Hello from livekit")
    text = ""
    async with model.chat(chat_ctx=context) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                text += chunk.delta.content
    await model.aclose()
    assert text and simulator.stats.as_json()["streamed_requests"] == 1


def test_the_stats_reset_and_an_oversized_body_is_refused_with_413(tmp_path: Path) -> None:
    with start_simulated_llm(50, 200, tmp_path / "simulated.log") as running:
        assert running.base_url.startswith("http://127.0.0.1:")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = json.dumps({"model": "sim", "messages": user("Hi")}).encode()
        request = urllib.request.Request(
            running.base_url + "/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with opener.open(request, timeout=10) as response:
            assert json.loads(response.read())["choices"][0]["message"]["content"]
        assert running.stats()["requests"] == 1
        assert running.reset_stats()["requests"] == 0
        huge = urllib.request.Request(
            running.base_url + "/chat/completions",
            data=b"x" * (5 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(huge, timeout=10)
        assert refused.value.code == 413
        assert running.stats()["requests"] == 0
    assert running.process.returncode is not None


async def test_a_schema_sent_as_an_llguidance_grammar_gets_a_valid_object(
    client: AsyncOpenAI,
) -> None:
    schema = {
        "type": "object",
        "properties": {"system_response": {"type": "string"}, "mood": {"enum": ["calm", "sad"]}},
        "required": ["system_response", "mood"],
    }
    grammar = f"%llguidance {{}}\nstart: %json {json.dumps(schema)}"
    answer = await create(client, messages=user("Hi"), extra_body={"grammar": grammar})
    text = answer.choices[0].message.content
    assert text.startswith('{"system_response":"')
    jsonschema.validate(json.loads(text), schema)
