"""Checking what one turn showed against its expectations: pure functions, no services.

Each expectation gives one `Outcome` named by its path in the suite (`turns[1].fields.urgency.
one_of`), so a failure says which line of the suite broke and what the turn held instead.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_configs.evals import FieldCheck, GreetingExpect, ToolCallCheck, TurnExpect

Status = Literal["passed", "failed", "skipped"]
NO_JUDGE = (
    "no judge model is configured (EVALS_JUDGE_BASE_URL): a rubric is never counted as passed "
    "without one"
)


@dataclass(frozen=True)
class Outcome:
    expectation: str
    status: Status
    detail: str = ""


@dataclass
class ObservedTurn:
    """What the room showed for one user turn."""

    user: str
    payload: dict[str, Any]
    """The turn's `agent-turn` payload (fields, tool_calls, latency_ms, agent_id...)."""
    reply: str
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    """`agent-handoff` payloads that arrived during this turn."""
    path: str | None = None
    """Where the turn is in the suite (`turns[1]`, a simulated line `turns[1].simulate[0]`)."""

    def transcript(self) -> list[dict[str, str]]:
        return [{"role": "user", "text": self.user}, {"role": "agent", "text": self.reply}]


_MISSING = object()


def _outcome(name: str, ok: bool, detail: str) -> Outcome:
    return Outcome(name, "passed" if ok else "failed", "" if ok else detail)


def check_field(name: str, check: FieldCheck, fields: dict[str, Any]) -> list[Outcome]:
    value = fields.get(name, _MISSING)
    shown = "missing" if value is _MISSING else repr(value)
    has_value = value is not _MISSING and value is not None
    path = f"fields.{name}"
    outcomes = []
    if check.present is not None:
        want = "a value" if check.present else "no value"
        outcomes.append(
            _outcome(f"{path}.present", has_value == check.present, f"wanted {want}, got {shown}")
        )
    if "equals" in check.model_fields_set:
        outcomes.append(
            _outcome(
                f"{path}.equals", value == check.equals, f"wanted {check.equals!r}, got {shown}"
            )
        )
    if check.one_of is not None:
        outcomes.append(
            _outcome(
                f"{path}.one_of",
                value is not _MISSING and value in check.one_of,
                f"wanted one of {check.one_of!r}, got {shown}",
            )
        )
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if check.min is not None:
        outcomes.append(
            _outcome(
                f"{path}.min",
                number is not None and number >= check.min,
                f"wanted a number >= {check.min}, got {shown}",
            )
        )
    if check.max is not None:
        outcomes.append(
            _outcome(
                f"{path}.max",
                number is not None and number <= check.max,
                f"wanted a number <= {check.max}, got {shown}",
            )
        )
    if check.matches is not None:
        outcomes.append(
            _outcome(
                f"{path}.matches",
                isinstance(value, str) and re.search(check.matches, value) is not None,
                f"wanted a string matching /{check.matches}/, got {shown}",
            )
        )
    return outcomes


def check_reply(
    reply: str,
    contains: list[str],
    not_contains: list[str],
    matches: str | None,
    *,
    not_empty: bool = False,
) -> list[Outcome]:
    lowered = reply.lower()
    outcomes = [
        _outcome(f"reply_contains[{i}]", p.lower() in lowered, f"{p!r} not in {reply!r}")
        for i, p in enumerate(contains)
    ]
    outcomes += [
        _outcome(f"reply_not_contains[{i}]", p.lower() not in lowered, f"{p!r} in {reply!r}")
        for i, p in enumerate(not_contains)
    ]
    if matches is not None:
        found = re.search(matches, reply, re.IGNORECASE) is not None
        outcomes.append(_outcome("reply_matches", found, f"/{matches}/ does not match {reply!r}"))
    if not_empty:
        outcomes.append(_outcome("reply_not_empty", bool(reply.strip()), "the reply was empty"))
    return outcomes


def _called(check: ToolCallCheck, calls: list[dict[str, Any]]) -> bool:
    return any(
        call.get("name") == check.name
        and all(
            (call.get("arguments") or {}).get(k, _MISSING) == v for k, v in check.arguments.items()
        )
        for call in calls
    )


def evaluate_turn(expect: TurnExpect, observed: ObservedTurn) -> list[Outcome]:
    """Every expectation of the turn, in the order the suite lists them."""
    payload = observed.payload
    outcomes: list[Outcome] = []
    if expect.agent is not None:
        got = payload.get("agent_id")
        outcomes.append(
            _outcome("agent", got == expect.agent, f"wanted {expect.agent}, answered by {got}")
        )
    fields = payload.get("fields") or {}
    for name, check in expect.fields.items():
        outcomes += check_field(name, check, fields)
    outcomes += check_reply(
        observed.reply,
        expect.reply_contains,
        expect.reply_not_contains,
        expect.reply_matches,
        not_empty=expect.reply_not_empty,
    )
    calls = payload.get("tool_calls") or []
    names = [call.get("name") for call in calls]
    for i, call_check in enumerate(expect.tool_called):
        wanted = call_check.name + (f" with {call_check.arguments}" if call_check.arguments else "")
        outcomes.append(
            _outcome(
                f"tool_called[{i}]",
                _called(call_check, calls),
                f"wanted a call of {wanted}; calls: {calls if call_check.arguments else names}",
            )
        )
    if expect.handoff_to is not None:
        targets = [h.get("to_agent_id") for h in observed.handoffs]
        outcomes.append(
            _outcome(
                "handoff_to",
                expect.handoff_to in targets,
                f"wanted a hand-off to {expect.handoff_to}, got {targets or 'none'}",
            )
        )
    if expect.first_text_under_ms is not None:
        first_text = (payload.get("latency_ms") or {}).get("first_text")
        outcomes.append(
            _outcome(
                "first_text_under_ms",
                isinstance(first_text, int | float) and first_text < expect.first_text_under_ms,
                f"budget {expect.first_text_under_ms} ms, first text at "
                + (f"{first_text} ms" if first_text is not None else "no mark"),
            )
        )
    if expect.rubric is not None:
        outcomes.append(Outcome("rubric", "skipped", NO_JUDGE))
    return outcomes


def evaluate_greeting(expect: GreetingExpect, greeting: str) -> list[Outcome]:
    outcomes = check_reply(
        greeting, expect.reply_contains, expect.reply_not_contains, expect.reply_matches
    )
    return [Outcome(f"greeting.{o.expectation}", o.status, o.detail) for o in outcomes]


def passed(outcomes: list[Outcome]) -> bool:
    """Skipped expectations neither pass nor fail an attempt; every other one must pass."""
    return all(o.status != "failed" for o in outcomes)
