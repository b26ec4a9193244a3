"""Which agent type's intents does a user message express? Keyword matching, explainable.

Matching is case-insensitive and on whole words: the message and each keyword are cut into
words (letters, digits, underscore; anything else separates them), and a keyword matches when
its words appear in the message in a row. "refund" matches "Refund, please!" but not
"refunded"; "reset password" matches "how do I reset-password?" but not "reset my password".

Confidence of an intent: every distinct word of its matched keywords halves the remaining doubt,

    confidence = 1 - 0.5 ** (number of distinct words in the matched keywords)

One single-word keyword gives 0.5, two give 0.75, three 0.875; a two-word phrase counts as
two words (0.75), since a phrase is the stronger signal, and overlapping keywords ("password",
"reset password") do not count a word twice. A user message names an intent with
one or two words, which a fraction-of-all-keywords score would punish for a long keyword
list. An intent matches when its confidence reaches its own `threshold` (default 0.5: one
keyword). Of the matching intents the highest confidence wins; ties go to the intent with
more matched keywords, then to the earlier agent in the list and the earlier intent.
Only ACTIVE agent types take part.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent_configs.models import AgentConfig, AgentStatus, IntentSpec

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class IntentMatch:
    agent_id: str
    intent: str
    confidence: float
    matched_keywords: tuple[str, ...]


def match_intent(message: str, agents: Iterable[AgentConfig]) -> IntentMatch | None:
    """The best intent the message expresses among the active agents, or None."""
    text = _words_as_text(message)
    if text == " ":
        return None
    best: tuple[tuple[float, int], IntentMatch] | None = None
    for config in agents:
        if config.status != AgentStatus.ACTIVE:
            continue
        for intent in config.intents:
            match = _score(text, config.agent_id, intent)
            if match is None or match.confidence < intent.threshold:
                continue
            rank = (match.confidence, len(match.matched_keywords))
            if best is None or rank > best[0]:
                best = (rank, match)
    return None if best is None else best[1]


def _score(text: str, agent_id: str, intent: IntentSpec) -> IntentMatch | None:
    matched: list[str] = []
    words: set[str] = set()
    for keyword in intent.keywords:
        phrase = _words_as_text(keyword)
        if phrase != " " and phrase in text:
            matched.append(keyword)
            words.update(phrase.split())
    if not matched:
        return None
    return IntentMatch(agent_id, intent.name, 1 - 0.5 ** len(words), tuple(matched))


def _words_as_text(text: str) -> str:
    """` reset password ` for "Reset-password!": spaces around make `in` a whole-word test."""
    return " " + " ".join(_WORD.findall(text.casefold())) + " "
