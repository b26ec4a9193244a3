"""The console's lists of event types follow agent_configs/cloudevents.py: a type added there
and not here could not be subscribed to from the console (eval.completed, agent.activated and
agent.gate_overridden were missing from the webhook form)."""

import re
from pathlib import Path

from agent_configs.cloudevents import AGENT_EVENTS, EventType

CONSOLE_SRC = Path(__file__).parents[2] / "console" / "src"


def quoted_in_block(path: Path, opening: str) -> set[str]:
    """The quoted event types of the literal (`[...]` or `{...}`) that follows `opening`."""
    text = path.read_text(encoding="utf-8")
    start = text.index("=", text.index(opening))
    body = re.match(r"[^\[{]*([\[{])", text[start:])
    assert body is not None, f"no literal after {opening} in {path}"
    close = "]" if body.group(1) == "[" else "}"
    end = text.index(close, start + body.end())
    return set(re.findall(r'"([a-z_]+\.[a-z_]+)"', text[start:end]))


def test_the_webhook_form_offers_every_event_type_the_api_accepts() -> None:
    offered = quoted_in_block(CONSOLE_SRC / "webhooks" / "api.ts", "export const EVENT_TYPES")
    assert offered == {t.value for t in EventType}


def test_the_agent_history_names_every_agent_event_in_words() -> None:
    named = quoted_in_block(CONSOLE_SRC / "agents" / "history.ts", "const VERBS")
    assert {t.value for t in AGENT_EVENTS} <= named
