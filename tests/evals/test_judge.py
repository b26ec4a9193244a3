"""The judge through the scripted endpoint (tests/worker/scripted_llm.py, in this process on
loopback): its verdicts, a malformed answer, no judge at all, a key the egress policy refuses."""

import json
from collections.abc import AsyncIterator

import pytest

from evals.chat import ChatModel
from evals.expectations import NO_JUDGE
from evals.judge import Judge, judge_rubric
from tests.worker.scripted_llm import ScriptedLLM

RUBRIC = "Greets the caller and asks what the problem is."
TRANSCRIPT = [
    {"role": "agent", "text": "Hello, support here."},
    {"role": "user", "text": "My invoice is wrong."},
    {"role": "agent", "text": "Sorry about that, which invoice?"},
]


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as scripted:
        yield scripted


def judge_at(endpoint: ScriptedLLM, api_key_env: str | None = None) -> Judge:
    return Judge(ChatModel("judge", endpoint.url, "judge-model", api_key_env=api_key_env))


async def test_a_pass_verdict_passes_the_rubric_and_the_judge_reads_the_transcript(
    endpoint: ScriptedLLM,
) -> None:
    endpoint.reply = json.dumps({"pass": True, "reason": "It greets and asks."})
    outcome = await judge_at(endpoint).verdict(RUBRIC, TRANSCRIPT)
    assert (outcome.expectation, outcome.status, outcome.detail) == (
        "rubric",
        "passed",
        "It greets and asks.",
    )
    (request,) = endpoint.requests
    assert request["model"] == "judge-model" and request["response_format"] == {
        "type": "json_object"
    }
    asked = request["messages"][-1]["content"]
    assert RUBRIC in asked and "user: My invoice is wrong." in asked
    assert asked.endswith("agent: Sorry about that, which invoice?")


async def test_a_fail_verdict_fails_the_rubric_with_the_judges_reason(
    endpoint: ScriptedLLM,
) -> None:
    endpoint.reply = json.dumps({"pass": False, "reason": "It never asks about the problem."})
    outcome = await judge_at(endpoint).verdict(RUBRIC, TRANSCRIPT)
    assert (outcome.status, outcome.detail) == ("failed", "It never asks about the problem.")


@pytest.mark.parametrize(
    "answer",
    ["Yes, it passes.", '{"pass": "yes", "reason": "ok"}', '{"reason": "no verdict"}'],
)
async def test_a_malformed_answer_fails_the_rubric_saying_what_was_wanted(
    endpoint: ScriptedLLM, answer: str
) -> None:
    endpoint.reply = answer
    outcome = await judge_at(endpoint).verdict(RUBRIC, TRANSCRIPT)
    assert outcome.status == "failed"
    assert outcome.detail.startswith("the judge did not answer the JSON verdict"), outcome.detail
    assert answer[:20] in outcome.detail


async def test_no_judge_configured_skips_the_rubric_never_passes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EVALS_JUDGE_BASE_URL", raising=False)
    assert Judge.from_env() is None
    outcome = await judge_rubric(None, RUBRIC, TRANSCRIPT)
    assert (outcome.status, outcome.detail) == ("skipped", NO_JUDGE)


async def test_a_judge_that_cannot_answer_fails_the_rubric_naming_why(
    endpoint: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_JUDGE_KEY", "sk-never-shown")
    refused = judge_at(endpoint, api_key_env="EVALS_JUDGE_KEY")  # not in EGRESS_SECRETS
    outcome = await refused.verdict(RUBRIC, TRANSCRIPT)
    assert outcome.status == "failed" and "egress policy" in outcome.detail, outcome.detail
    assert "EVALS_JUDGE_KEY" in outcome.detail and "sk-never-shown" not in outcome.detail
    assert endpoint.requests == []  # refused before anything left the process
    await endpoint.stop()
    outcome = await judge_at(endpoint).verdict(RUBRIC, TRANSCRIPT)
    assert outcome.status == "failed" and "unreachable" in outcome.detail, outcome.detail
