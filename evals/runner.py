"""Running a suite through the real path: a LiveKit room per scenario attempt, the running
worker (dispatched by its agent name, as a frontend does), routing on the scenario's metadata,
the agent type's stored version (or the version pinned with `--version`).

What is read back is what any frontend sees: the agent's `switchboard.agent_id` attribute (the
routing decision), each turn's `agent-turn` payload (fields, tool calls, latency marks), the
`agent-handoff` messages and the transcripts (the greeting, the replies).
"""

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import api, rtc

from agent_configs.evals import Scenario, Suite
from agent_configs.routing.pin import PIN_KEY, AgentPin
from devstack.frontend import RoomClient
from evals.expectations import (
    ObservedTurn,
    Outcome,
    evaluate_greeting,
    evaluate_turn,
    passed,
)

HANDOFF_TOPIC = "agent-handoff"
TURN_TOPIC = "agent-turn"


@dataclass(frozen=True)
class Stack:
    """Where the run goes: the LiveKit server and the worker's agent name."""

    livekit_url: str
    api_key: str
    api_secret: str
    worker_agent_name: str
    turn_timeout_s: float = 120.0
    join_timeout_s: float = 60.0


class EvalRoomClient(RoomClient):
    """A RoomClient whose dispatch may carry a pin (`switchboard_pin`, as the admin API's token
    route puts it): in the job metadata only, never on the participant."""

    def __init__(self, stack: Stack, pin: AgentPin | None) -> None:
        super().__init__(
            stack.livekit_url, stack.api_key, stack.api_secret, stack.worker_agent_name
        )
        self.pin = pin

    def token(
        self,
        metadata: str | None,
        identity: str,
        *,
        in_dispatch: bool = True,
        may_update_own_metadata: bool = False,
    ) -> str:
        if self.pin is None:
            return super().token(
                metadata,
                identity,
                in_dispatch=in_dispatch,
                may_update_own_metadata=may_update_own_metadata,
            )
        job = json.loads(metadata or "{}") | {PIN_KEY: self.pin.as_metadata()}
        dispatch = api.RoomAgentDispatch(agent_name=self.agent_name, metadata=json.dumps(job))
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(
                api.VideoGrants(room_join=True, room=self.room_name, can_update_own_metadata=False)
            )
            .with_room_config(api.RoomConfiguration(agents=[dispatch]))
            .with_metadata(metadata or "")
            .to_jwt()
        )


@dataclass
class Attempt:
    room: str
    outcomes: list[tuple[int | None, Outcome]] = field(default_factory=list)
    """(turn index or None for the greeting and routing, outcome)."""
    turns: list[ObservedTurn] = field(default_factory=list)
    greeting: str | None = None
    error: str | None = None
    """Why the attempt could not finish (no agent joined, a turn never came)."""
    wall_time_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and passed([o for _, o in self.outcomes])

    def transcript(self, up_to: int | None) -> list[dict[str, str]]:
        lines = [{"role": "agent", "text": self.greeting}] if self.greeting is not None else []
        for index, turn in enumerate(self.turns):
            if up_to is not None and index > up_to:
                break
            lines += turn.transcript()
        return lines

    def failures(self) -> list[dict[str, Any]]:
        """Each failed expectation with the transcript up to its turn."""
        found = [
            {
                "turn": turn,
                "expectation": _named(turn, outcome),
                "detail": outcome.detail,
                "transcript": self.transcript(turn),
            }
            for turn, outcome in self.outcomes
            if outcome.status == "failed"
        ]
        if self.error is not None:
            found.append(
                {
                    "turn": len(self.turns),
                    "expectation": "run",
                    "detail": self.error,
                    "transcript": self.transcript(None),
                }
            )
        return found

    def skipped(self) -> list[str]:
        return [
            _named(turn, outcome) for turn, outcome in self.outcomes if outcome.status == "skipped"
        ]


def _named(turn: int | None, outcome: Outcome) -> str:
    return outcome.expectation if turn is None else f"turns[{turn}].{outcome.expectation}"


@dataclass
class ScenarioResult:
    scenario: Scenario
    attempts: list[Attempt]

    @property
    def pass_rate(self) -> float:
        return sum(a.passed for a in self.attempts) / len(self.attempts)

    @property
    def passed(self) -> bool:
        return self.pass_rate >= self.scenario.required_pass_rate

    def document(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "repeat": len(self.attempts),
            "required_pass_rate": self.scenario.required_pass_rate,
            "pass_rate": self.pass_rate,
            "passed": self.passed,
            "rooms": [a.room for a in self.attempts],
            "wall_time_s": round(sum(a.wall_time_s for a in self.attempts), 3),
            "failures": [
                {"attempt": i, **failure}
                for i, attempt in enumerate(self.attempts)
                for failure in attempt.failures()
            ],
            "skipped": sorted({name for a in self.attempts for name in a.skipped()}),
        }


async def run_attempt(scenario: Scenario, stack: Stack, pin: AgentPin | None) -> Attempt:
    client = EvalRoomClient(stack, pin)
    attempt = Attempt(room=client.room_name)
    started = time.monotonic()
    try:
        await _converse(client, scenario, stack, attempt)
    except AssertionError as exc:  # RoomClient.wait_for's timeout
        attempt.error = str(exc).split("; transcripts=")[0]
    except rtc.ConnectError as exc:
        attempt.error = f"could not join the room: {exc}"
    finally:
        attempt.wall_time_s = time.monotonic() - started
        await client.leave()
    return attempt


def _failed_turn(index: int, exc: AssertionError) -> AssertionError:
    return AssertionError(f"turns[{index}]: {exc}")


async def _converse(
    client: EvalRoomClient, scenario: Scenario, stack: Stack, attempt: Attempt
) -> None:
    await client.join(scenario.metadata)
    routed, _ = await client.routed_agent(stack.join_timeout_s)
    if scenario.routed_to is not None:
        ok = routed == scenario.routed_to
        detail = "" if ok else f"wanted {scenario.routed_to}, routed to {routed}"
        attempt.outcomes.append((None, Outcome("routed_to", "passed" if ok else "failed", detail)))
    if scenario.greeting is not None:
        attempt.greeting = await client.next_transcript(0, stack.join_timeout_s)
        attempt.outcomes += [
            (None, o) for o in evaluate_greeting(scenario.greeting, attempt.greeting)
        ]
    for index, turn in enumerate(scenario.turns):
        turns_before = len(client.data.get(TURN_TOPIC, []))
        handoffs_before = len(client.data.get(HANDOFF_TOPIC, []))
        transcripts_before = len(client.transcripts)
        if turn.user is None:
            raise AssertionError(f"turns[{index}]: this runner does not play simulated callers yet")
        await client.say(turn.user)
        try:
            payload = await client.next_turn(turns_before, stack.turn_timeout_s)
        except AssertionError as exc:
            raise _failed_turn(index, exc) from None
        reply = (payload.get("fields") or {}).get("system_response")
        if not isinstance(reply, str):  # a type without the reply field: its spoken words
            reply = " ".join(client.transcripts[transcripts_before:])
        observed = ObservedTurn(
            user=turn.user,
            payload=payload,
            reply=reply,
            handoffs=list(client.data.get(HANDOFF_TOPIC, [])[handoffs_before:]),
        )
        attempt.turns.append(observed)
        attempt.outcomes += [(index, o) for o in evaluate_turn(turn.expect, observed)]


OnAttempt = Callable[[Scenario, Attempt], Awaitable[None]]
"""Called after each attempt (a run service reports its progress with it)."""


async def _no_progress(scenario: Scenario, attempt: Attempt) -> None:
    return None


async def run_scenario(
    scenario: Scenario,
    stack: Stack,
    pin: AgentPin | None,
    repeat: int | None = None,
    on_attempt: OnAttempt = _no_progress,
) -> ScenarioResult:
    """The attempts run one after the other: they share the worker, and a scenario's pass
    rate must not depend on how many sessions the worker had at once."""
    attempts = []
    for _ in range(repeat or scenario.repeat):
        attempts.append(await run_attempt(scenario, stack, pin))
        await on_attempt(scenario, attempts[-1])
    return ScenarioResult(scenario, attempts)


def attempts_total(suite: Suite, repeat: int | None = None) -> int:
    return sum(repeat or s.repeat for s in suite.scenarios)


async def run_suite(
    suite: Suite,
    stack: Stack,
    pin: AgentPin | None,
    repeat: int | None = None,
    on_attempt: OnAttempt = _no_progress,
) -> list[ScenarioResult]:
    return [await run_scenario(s, stack, pin, repeat, on_attempt) for s in suite.scenarios]


def all_passed(results: list[ScenarioResult]) -> bool:
    return all(r.passed for r in results)
