"""Running a suite through the real path: a LiveKit room per scenario attempt, the running
worker (dispatched by its agent name, as a frontend does), routing on the scenario's metadata,
the agent type's stored version (or the version pinned with `--version`).

What is read back is what any frontend sees: the agent's `switchboard.agent_id` attribute (the
routing decision), each turn's `agent-turn` payload (fields, tool calls, latency marks), the
`agent-handoff` messages and the transcripts (the greeting, the replies; in a voice scenario
also the transcription of the user's speech, which is the line the agent heard). Only a
session's end reason is not in the room: it is read from the session's record.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import api, rtc
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.eval_runs import EVAL_RUN_KEY
from agent_configs.evals import Scenario, ScenarioTurn, SessionEnded, Suite, TurnExpect
from agent_configs.routing.pin import PIN_KEY, AgentPin
from devstack.frontend import RoomClient
from evals import speech
from evals.caller import CallerError, SimulatedCaller
from evals.expectations import (
    ObservedTurn,
    Outcome,
    evaluate_greeting,
    evaluate_turn,
    passed,
)
from evals.judge import Judge, judge_rubric

HANDOFF_TOPIC = "agent-handoff"
TURN_TOPIC = "agent-turn"
SESSIONS = "sessions"
TRANSCRIBED_TRACK = "lk.transcribed_track_id"
TRANSCRIPTION_FINAL = "lk.transcription_final"
AGENT_STATE = "lk.agent.state"
QUIET_S = 2.0
"""A voice line waits for the agent to have spoken since the last line and to listen again,
or to have listened this long (an agent with nothing to say: no greeting)."""
HEARD_WAIT_S = 10.0
"""After a spoken turn's answer, how long its final transcription may still take to arrive
(it is sent before the reply starts: normally it is already there)."""


@dataclass(frozen=True)
class Stack:
    """Where the run goes (the LiveKit server, the worker's agent name) and what helps it: the
    judge and the simulated caller, by default the operator's (EVALS_JUDGE_*, EVALS_CALLER_*:
    evals/judge.py, evals/caller.py; `judge=None`: rubrics are skipped), and the database whose
    `sessions` records say why a session ended (run_and_store gives it; None: `session_ended`
    cannot be checked and fails saying so)."""

    livekit_url: str
    api_key: str
    api_secret: str
    worker_agent_name: str
    turn_timeout_s: float = 120.0
    join_timeout_s: float = 60.0
    judge: Judge | None = field(default_factory=Judge.from_env)
    caller: SimulatedCaller = field(default_factory=SimulatedCaller.from_env)
    database: AsyncDatabase | None = None
    end_timeout_s: float = 30.0
    """How long `session_ended` waits for the session's end record after its turn."""
    run_id: str | None = None
    """The run the rooms belong to: in each dispatch's job metadata, so the worker marks the
    sessions as an eval's and live statistics leave them out (run_and_store sets it)."""

    def helper_models(self, suite: Suite) -> dict[str, str | None]:
        """`models.judge` and `models.caller` of a run: `host/model` of each one the suite
        uses (a rubric, a `simulate` turn), else null."""
        turns = [t for s in suite.scenarios for t in s.turns]
        judged = any(t.expect.rubric is not None for t in turns)
        simulated = any(t.simulate is not None for t in turns)
        return {
            "judge": self.judge.model.name if judged and self.judge else None,
            "caller": self.caller.model.name if simulated else None,
        }


class EvalRoomClient(RoomClient):
    """A RoomClient whose dispatch may carry a pin (`switchboard_pin`, as the admin API's token
    route puts it) and the run's id (`switchboard_eval_run`): in the job metadata only, never
    on the participant."""

    def __init__(self, stack: Stack, pin: AgentPin | None) -> None:
        super().__init__(
            stack.livekit_url, stack.api_key, stack.api_secret, stack.worker_agent_name
        )
        self.pin = pin
        self.run_id = stack.run_id
        self.heard: list[str] = []
        """Final transcriptions of this participant's speech (what the agent heard); they
        are kept out of `transcripts`, which holds the agent's words only."""
        self.agent_states: list[str] = []
        """Each `lk.agent.state` the agent went through (listening, thinking, speaking...)."""
        self.state_since = time.monotonic()
        self.spoken_states = 0
        """`agent_states` when the last line was said (the agent speaks after it)."""

    async def join(self, metadata: str | dict[str, Any] | None, *args: Any, **kw: Any) -> None:
        await super().join(metadata, *args, **kw)
        self.room.on("participant_disconnected", lambda *_: self._changed.set())
        self.room.on("participant_attributes_changed", self._on_attributes)

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        state = changed.get(AGENT_STATE)
        if state is not None and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.agent_states.append(state)
            self.state_since = time.monotonic()

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        attributes = reader.info.attributes or {}
        mine = {p.sid for p in self.room.local_participant.track_publications.values()}
        if identity != self.room.local_participant.identity and (
            attributes.get(TRANSCRIBED_TRACK) not in mine
        ):
            super()._on_text_stream(reader, identity)
            return

        async def read() -> None:
            try:
                text = await reader.read_all()
            except rtc.StreamError:
                return
            if (reader.info.attributes or {}).get(TRANSCRIPTION_FINAL) == "true" and text.strip():
                self.heard.append(text.strip())
                self._changed.set()

        asyncio.ensure_future(read())

    def agent_present(self) -> bool:
        return any(
            p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            for p in self.room.remote_participants.values()
        )

    def token(
        self,
        metadata: str | None,
        identity: str,
        *,
        in_dispatch: bool = True,
        may_update_own_metadata: bool = False,
    ) -> str:
        marks = ({PIN_KEY: self.pin.as_metadata()} if self.pin else {}) | (
            {EVAL_RUN_KEY: self.run_id} if self.run_id else {}
        )
        if not marks:
            return super().token(
                metadata,
                identity,
                in_dispatch=in_dispatch,
                may_update_own_metadata=may_update_own_metadata,
            )
        job = json.loads(metadata or "{}") | marks
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

    def transcript(self, up_to: int | None = None) -> list[dict[str, str]]:
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
                "expectation": self._named(turn, outcome),
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
            self._named(turn, outcome)
            for turn, outcome in self.outcomes
            if outcome.status == "skipped"
        ]

    def _named(self, turn: int | None, outcome: Outcome) -> str:
        """Its path in the suite: `turns[1].fields.urgency.one_of`, a simulated caller's line
        `turns[1].simulate[2].reply_not_empty`, the greeting's and routing's unprefixed."""
        if turn is None:
            return outcome.expectation
        path = self.turns[turn].path if turn < len(self.turns) else None
        return f"{path or f'turns[{turn}]'}.{outcome.expectation}"


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
    if scenario.modality == "voice":
        speech.prepare()  # before any room connects: see evals/speech.py
    client = EvalRoomClient(stack, pin)
    attempt = Attempt(room=client.room_name)
    started = time.monotonic()
    joining = asyncio.ensure_future(client.join(scenario.metadata))
    try:
        await asyncio.shield(joining)
        await _converse(client, scenario, stack, attempt)
    except AssertionError as exc:  # RoomClient.wait_for's timeout
        attempt.error = str(exc).split("; transcripts=")[0]
    except CallerError as exc:
        attempt.error = f"the simulated caller: {exc}"
    except rtc.ConnectError as exc:
        attempt.error = f"could not join the room: {exc}"
    finally:
        attempt.wall_time_s = time.monotonic() - started
        await _left(client, joining)
    return attempt


async def _left(client: EvalRoomClient, joining: "asyncio.Future[None]") -> None:
    """Leaves the room, even when the attempt was cancelled (a run service stopping) while
    the room was connecting: the connect is let finish first, then closed. A connect
    abandoned halfway is never told "ready for events", and livekit's FFI then panics and
    SIGTERMs the whole process (a test process died ~10 s after a run service test stopped
    a run mid-join: "timed out waiting for ReadyForRoomEventRequest after ConnectCallback")."""
    if not joining.done():
        await asyncio.wait([joining])
    if not joining.cancelled() and joining.exception() is not None:
        return  # never connected: nothing to leave
    await client.leave()


async def _converse(
    client: EvalRoomClient, scenario: Scenario, stack: Stack, attempt: Attempt
) -> None:
    """After the join (run_attempt)."""
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
    if scenario.modality == "text":
        # Typed only once the agent has said what it says first: a greeting that arrives
        # after the first line would be read as that line's reply (a type without a reply
        # field is judged on its transcripts). Voice waits before every line (_speak).
        await _until_listening(client, stack)
    if attempt.greeting is None and client.transcripts:
        attempt.greeting = client.transcripts[0]  # in the transcript the judge and failures show
    for index, turn in enumerate(scenario.turns):
        if turn.simulate is not None:
            await _simulate(client, scenario, stack, attempt, index, turn)
        else:
            assert turn.user is not None  # a turn is one or the other (ScenarioTurn)
            await _play(client, scenario, stack, attempt, turn.user, f"turns[{index}]")
            await _check_line(stack, attempt, turn.expect)
        if turn.expect.session_ended is not None:
            await _check_end(client, stack, attempt, index, turn.expect.session_ended)


async def _simulate(
    client: EvalRoomClient,
    scenario: Scenario,
    stack: Stack,
    attempt: Attempt,
    index: int,
    turn: ScenarioTurn,
) -> None:
    """The caller's lines, each a turn checked against the suite turn's `expect` (but
    `session_ended`, checked after the last), until its turns are done, it says it is done,
    or the agent has left (the session ended: nobody to talk to)."""
    simulation, expect = turn.simulate, turn.expect
    assert simulation is not None
    caller = stack.caller
    for line_index in range(simulation.turns):
        if not client.agent_present():
            return
        line = await caller.next_line(simulation, attempt.transcript(), first=line_index == 0)
        if not line.text:
            return
        path = f"turns[{index}].simulate[{line_index}]"
        if not await _play(client, scenario, stack, attempt, line.text, path, may_end=True):
            return
        await _check_line(stack, attempt, expect)
        if line.done:
            return


async def _play(
    client: EvalRoomClient,
    scenario: Scenario,
    stack: Stack,
    attempt: Attempt,
    line: str,
    path: str,
    *,
    may_end: bool = False,
) -> bool:
    """Says `line` (typed, or spoken into the microphone) and observes the turn it makes.
    False when the agent left instead of answering and `may_end` allows that (a simulated
    caller talking past the session's end); a scripted line it left unanswered fails."""
    turns_before = len(client.data.get(TURN_TOPIC, []))
    handoffs_before = len(client.data.get(HANDOFF_TOPIC, []))
    transcripts_before = len(client.transcripts)
    heard_before = len(client.heard)
    try:
        if scenario.modality == "voice":
            await _speak(client, stack, line)
        else:
            await client.say(line)
        await client.wait_for(
            lambda: (
                len(client.data.get(TURN_TOPIC, [])) > turns_before or not client.agent_present()
            ),
            stack.turn_timeout_s,
            f"agent-turn #{turns_before + 1}",
        )
        if len(client.data.get(TURN_TOPIC, [])) <= turns_before:
            if may_end:
                return False
            raise AssertionError("the agent left the room (its session ended) without answering")
        if scenario.modality == "voice":
            await client.wait_for(
                lambda: len(client.heard) > heard_before,
                HEARD_WAIT_S,
                "the transcription of the spoken line",
            )
    except AssertionError as exc:
        raise AssertionError(f"{path}: {exc}") from None
    payload = client.data[TURN_TOPIC][turns_before]
    reply = (payload.get("fields") or {}).get("system_response")
    if not isinstance(reply, str):  # a type without the reply field: its spoken words
        reply = " ".join(client.transcripts[transcripts_before:])
    attempt.turns.append(
        ObservedTurn(
            user=" ".join(client.heard[heard_before:]) if scenario.modality == "voice" else line,
            payload=payload,
            reply=reply,
            handoffs=list(client.data.get(HANDOFF_TOPIC, [])[handoffs_before:]),
            path=path,
        )
    )
    return True


async def _speak(client: EvalRoomClient, stack: Stack, line: str) -> None:
    """The line as speech, then the silence that ends the user's turn; said once the agent
    listens after what it had to say since the last line (the greeting, the last reply): the
    worker says its greeting uninterruptible, and livekit drops the audio that arrives
    meanwhile (the first spoken line was never heard when said as soon as the greeting's
    transcript had arrived, its audio still playing)."""

    await _until_listening(client, stack)
    pcm, sample_rate = await speech.synthesize(line)
    # From here on the agent's states answer this line (it may start while the trailing
    # silence still plays).
    client.spoken_states = len(client.agent_states)
    await client.speak(pcm, sample_rate)


async def _until_listening(client: EvalRoomClient, stack: Stack) -> None:
    """Until the agent listens after what it had to say since the last line: it spoke, or
    nothing changed for QUIET_S (a type without a greeting says nothing first)."""

    def listening() -> bool:
        if client.agent_attributes().get(AGENT_STATE) != "listening":
            return False
        spoke = "speaking" in client.agent_states[client.spoken_states :]
        return spoke or time.monotonic() - client.state_since >= QUIET_S

    await client.wait_for(listening, stack.turn_timeout_s, "the agent to listen")


async def _check_line(stack: Stack, attempt: Attempt, expect: TurnExpect) -> None:
    """The expectations of the turn just observed, `session_ended` aside (`_check_end`); a
    rubric is judged on the transcript up to this turn."""
    observed = len(attempt.turns) - 1
    for outcome in evaluate_turn(expect, attempt.turns[observed]):
        if outcome.expectation == "rubric" and expect.rubric is not None:
            outcome = await judge_rubric(stack.judge, expect.rubric, attempt.transcript(observed))
        attempt.outcomes.append((observed, outcome))


async def _check_end(
    client: EvalRoomClient, stack: Stack, attempt: Attempt, index: int, wanted: SessionEnded
) -> None:
    """After the suite's turn `index` (a simulated caller's last line included), the session
    ends, for `wanted.reason` if one is given: read from the session's record, which the
    worker writes when the job ends, a moment after the agent leaves the room."""
    name = f"turns[{index}].session_ended"
    if stack.database is None:
        attempt.outcomes.append(
            (None, Outcome(name, "failed", "the runner has no database to read the end from"))
        )
        return
    deadline = time.monotonic() + stack.end_timeout_s
    record = None
    while record is None and time.monotonic() < deadline:
        record = await stack.database[SESSIONS].find_one(
            {"room": client.room_name, "status": {"$in": ["ended", "aborted", "refused"]}},
            {"end_reason": 1, "end_detail": 1},
        )
        if record is None:
            await asyncio.sleep(0.25)
    if record is None:
        detail = f"the session had not ended {stack.end_timeout_s:g} s after the turn"
        attempt.outcomes.append((None, Outcome(name, "failed", detail)))
        return
    reason = record.get("end_reason")
    ok = wanted.reason is None or reason == wanted.reason
    why = f" ({record['end_detail']})" if record.get("end_detail") else ""
    detail = "" if ok else f"wanted the reason {wanted.reason}, it ended with {reason}{why}"
    attempt.outcomes.append((None, Outcome(name, "passed" if ok else "failed", detail)))


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
