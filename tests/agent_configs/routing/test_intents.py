"""Intent matching: which active agent type a user message is asking for, and how sure we are."""

from typing import Any

import pytest

from agent_configs.models import AgentConfig
from agent_configs.routing import IntentMatch, match_intent
from tests.factories import support_config


def agent(agent_id: str, *intents: dict[str, Any], status: str = "active") -> AgentConfig:
    return support_config(agent_id=agent_id, intents=list(intents), status=status)


BILLING = agent(
    "billing-agent-v1", {"name": "billing", "keywords": ["refund", "invoice", "charged twice"]}
)
SECURITY = agent(
    "security-agent-v1",
    {
        "name": "security",
        "keywords": ["vulnerability", "exploit", "security", "audit"],
        "threshold": 0.7,
    },
)
ACCOUNT = agent(
    "account-agent-v1", {"name": "login", "keywords": ["password", "reset password", "locked out"]}
)
AGENTS = [BILLING, SECURITY, ACCOUNT]


def test_best_match_names_agent_intent_confidence_and_keywords() -> None:
    match = match_intent("I was CHARGED TWICE, I want a refund!", AGENTS)
    assert match == IntentMatch("billing-agent-v1", "billing", 0.875, ("refund", "charged twice"))


@pytest.mark.parametrize(
    ("message", "keywords"),
    [
        ("Refund, please.", ("refund",)),
        ("refund?", ("refund",)),
        ("where is my INVOICE", ("invoice",)),
        ("I got charged   twice", ("charged twice",)),
        ("charged-twice", ("charged twice",)),
    ],
)
def test_matching_ignores_case_punctuation_and_spacing(
    message: str, keywords: tuple[str, ...]
) -> None:
    match = match_intent(message, [BILLING])
    assert match is not None and match.matched_keywords == keywords


@pytest.mark.parametrize(
    "message", ["it was refunded already", "invoices", "they charged me twice", "prefund", ""]
)
def test_only_whole_words_and_whole_phrases_match(message: str) -> None:
    assert match_intent(message, [BILLING]) is None


def test_confidence_grows_with_each_matched_word() -> None:
    one = match_intent("refund", [BILLING])
    two = match_intent("refund my invoice", [BILLING])
    phrase = match_intent("charged twice", [BILLING])
    assert (one and one.confidence, two and two.confidence, phrase and phrase.confidence) == (
        0.5,
        0.75,
        0.75,
    )


def test_overlapping_keywords_count_each_word_once() -> None:
    match = match_intent("please reset password", [ACCOUNT])
    assert match == IntentMatch("account-agent-v1", "login", 0.75, ("password", "reset password"))


def test_an_intent_below_its_threshold_does_not_match() -> None:
    assert match_intent("is there a security problem?", [SECURITY]) is None  # 0.5 < 0.7
    match = match_intent("security audit please", [SECURITY])
    assert match is not None and (match.intent, match.confidence) == ("security", 0.75)


def test_the_more_confident_intent_wins_and_ties_go_to_the_earlier_agent() -> None:
    message = "found an exploit and a vulnerability; also I need a refund"
    assert match_intent(message, AGENTS).agent_id == "security-agent-v1"
    tied = "refund, and my password"
    assert match_intent(tied, [BILLING, ACCOUNT]).agent_id == "billing-agent-v1"
    assert match_intent(tied, [ACCOUNT, BILLING]).agent_id == "account-agent-v1"


def test_a_lower_scored_intent_that_passes_its_threshold_beats_one_that_does_not() -> None:
    strict = agent(
        "strict-agent", {"name": "strict", "keywords": ["refund", "invoice"], "threshold": 1.0}
    )
    lenient = agent("lenient-agent", {"name": "lenient", "keywords": ["refund"]})
    match = match_intent("refund my invoice", [strict, lenient])
    assert match is not None and (match.agent_id, match.confidence) == ("lenient-agent", 0.5)


def test_paused_and_archived_agents_take_no_intents() -> None:
    paused = agent("billing-agent-v1", *BILLING.model_dump()["intents"], status="paused")
    archived = agent("billing-agent-v2", *BILLING.model_dump()["intents"], status="archived")
    assert match_intent("refund", [paused, archived]) is None
    assert match_intent("refund", [paused, archived, BILLING]).agent_id == "billing-agent-v1"


def test_agents_without_intents_never_match() -> None:
    assert match_intent("refund my invoice", [support_config(intents=[])]) is None
