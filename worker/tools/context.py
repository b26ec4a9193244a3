"""What a tool call runs with (ToolContext), what it leaves behind (ToolCallRecord), and the one
wrapper every kind of tool goes through (`recorded_call`), so each call is validated, timed,
recorded, counted and turned into a result the model can read, whatever the kind."""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from jsonschema import Draft202012Validator
from livekit.agents import llm

from agent_configs.egress import EgressPolicy
from worker import metrics

logger = logging.getLogger("switchboard.tools")

PREVIEW_CHARS = 200
ARGUMENTS_CHARS = 1000
"""About the most a call's arguments take in its record (compact JSON), as PREVIEW_CHARS is for
its result. The record goes into the turn's `agent-turn` payload, its `turn.completed` event
and every turn of `session.ended`: uncut, one 1 MB argument made a 1,000,798-byte `agent-turn`
that LiveKit refused (its data messages stop at 64,000 bytes), and a long session's report
could pass MongoDB's 16 MB and be dead-lettered."""
ERROR_CHARS = 500
"""At most this much of an error goes back to the model and into the record: jsonschema quotes
the value it refuses, a megabyte of it if the model sent one."""
TRUNCATED = "...[truncated]"


@dataclass(frozen=True)
class ToolCallRecord:
    """One call, as recorded on the turn and published with it. `arguments` are the model's
    own (cut to about ARGUMENTS_CHARS, see `recorded_arguments`): header values (secrets
    included) never appear here."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    duration_ms: int
    result_preview: str
    """At most PREVIEW_CHARS of what went back to the model."""
    error: str | None = None
    """"timeout after 5.0s", "HTTP 503", "refused by the egress policy: ..."."""
    arguments_truncated: bool = False
    """The model's arguments were longer than this record keeps."""
    started_at: float = 0.0
    """When the call began (wall clock, seconds): its place in the turn's waterfall
    (worker/waterfall.py). Not in `as_dict`: the stored and published call is as it was."""

    def as_dict(self) -> dict[str, Any]:
        """`error` and `arguments_truncated` only when there is something to say."""
        record = asdict(self)
        del record["started_at"]
        if self.error is None:
            del record["error"]
        if not self.arguments_truncated:
            del record["arguments_truncated"]
        return record


@dataclass
class ToolCallLog:
    """The calls of one session not yet attached to a turn: the conversation drains it when
    a turn completes."""

    _records: list[ToolCallRecord] = field(default_factory=list)

    def add(self, record: ToolCallRecord) -> None:
        self._records.append(record)

    def drain(self) -> list[ToolCallRecord]:
        drained, self._records = self._records, []
        return drained


class SessionControls(Protocol):
    """What the built-in tools ask of the session (implemented by worker/conversation.py).
    Each returns the text the model gets back as the tool's result."""

    async def end_session(self, reason: str, goodbye: str | None) -> str: ...

    async def transfer(
        self, target: str, reason: str, context: Literal["full", "summary", "none"]
    ) -> str: ...

    async def escalate(
        self, reason: str, then: Literal["continue", "hold", "end"], message: str | None
    ) -> str: ...


@dataclass(frozen=True)
class ToolContext:
    """The session a tool call belongs to. Only values nothing in the room can forge: the
    `user_id` is the trusted one (worker/metadata.py) or None."""

    session_id: str
    agent_id: str
    user_id: str | None
    room: str
    egress: EgressPolicy
    log: ToolCallLog
    controls: SessionControls
    say: Callable[[str], Coroutine[Any, Any, None]] | None
    """Speaks (voice) or shows (text) a waiting_message; None: nothing is said."""

    def session_value(self, name: str) -> str | None:
        """One of agent_configs.tools.SESSION_VALUES."""
        return {
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "room": self.room,
        }[name]


class Outcome(StrEnum):
    """The `outcome` label of switchboard_tool_calls_total."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    REFUSED = "refused"


class ToolFailure(Exception):
    """A call that failed in a way the model should hear about: `message` becomes its result
    (`{"error": message}`) and its record's `error`."""

    def __init__(self, message: str, outcome: Outcome = Outcome.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


class ToolBuildError(Exception):
    """Tools of a config this worker cannot provide (a plugin not installed, an MCP server the
    egress policy refuses): (field path, message) for each, like a config write's 422."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def error_result(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


def as_result_text(value: Any) -> str:
    """What a tool returned, as the text the model reads."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, marked when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def recorded_arguments(arguments: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The arguments as a record keeps them, and whether they were cut: whole when their compact
    JSON fits in ARGUMENTS_CHARS; else the first values that fit whole, then the next one as
    text cut (and marked) to the room left, and none after it. Still an object, so a reader
    sees the names and the start of what the model sent."""
    if len(as_result_text(arguments)) <= ARGUMENTS_CHARS:
        return arguments, False
    kept: dict[str, Any] = {}
    room = ARGUMENTS_CHARS
    for name, value in arguments.items():
        text = as_result_text(value)
        if len(name) + len(text) <= room:
            kept[name] = value
            room -= len(name) + len(text)
            continue
        if room - len(name) > len(TRUNCATED):
            kept[name] = cut(text, room - len(name))
        break
    return kept, True


def arguments_validator(parameters: dict[str, Any]) -> Draft202012Validator:
    """Compiled once per tool: validating a call's arguments then takes microseconds."""
    return Draft202012Validator(parameters)


def argument_problems(validator: Draft202012Validator, arguments: dict[str, Any]) -> str | None:
    """What is wrong with the model's arguments, in words it can act on (at most 3 problems)."""
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))[:3]
    if not errors:
        return None
    parts = []
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path)
        parts.append(f"{where}: {error.message}" if where else error.message)
    return "invalid arguments: " + "; ".join(parts)


async def recorded_call(
    context: ToolContext,
    *,
    name: str,
    kind: str,
    arguments: dict[str, Any],
    validator: Draft202012Validator | None,
    body: Callable[[], Awaitable[str]],
    timeout_s: float | None = None,
) -> str:
    """Run one tool call: validate the arguments, run `body` (within `timeout_s` if given),
    record it in `context.log` and the metrics. Never raises (except cancellation): a failure
    is an error result the model reads, and the conversation goes on."""
    started_at = time.time()
    started = time.perf_counter()
    error: str | None = None
    outcome = Outcome.OK
    try:
        problems = argument_problems(validator, arguments) if validator is not None else None
        if problems is not None:
            raise ToolFailure(problems)
        if timeout_s is None:
            result = await body()
        else:
            try:
                async with asyncio.timeout(timeout_s):
                    result = await body()
            except TimeoutError:
                raise ToolFailure(f"timeout after {timeout_s:g}s", Outcome.TIMEOUT) from None
    except ToolFailure as failure:
        error, outcome = failure.message, failure.outcome
    except llm.ToolError as failure:  # livekit's own way to say it (MCP tools, plugins)
        error, outcome = failure.message, Outcome.ERROR
    except Exception as exc:  # a bug in a tool (a plugin's, say) must not end the session
        logger.exception("tool %s failed", name, extra={"tool": name, "kind": kind})
        error, outcome = f"internal error ({type(exc).__name__})", Outcome.ERROR
    if error is not None:
        error = cut(error, ERROR_CHARS)
        result = error_result(error)
    elapsed = time.perf_counter() - started
    recorded, truncated = recorded_arguments(arguments)
    context.log.add(
        ToolCallRecord(
            name=name,
            arguments=recorded,
            ok=outcome is Outcome.OK,
            duration_ms=round(elapsed * 1000),
            result_preview=cut(result, PREVIEW_CHARS),
            error=error,
            arguments_truncated=truncated,
            started_at=started_at,
        )
    )
    metrics.TOOL_CALLS.labels(tool=name, kind=kind, outcome=outcome.value).inc()
    metrics.TOOL_CALL_SECONDS.labels(tool=name, kind=kind).observe(elapsed)
    logger.info(
        "tool %s: %s in %.0f ms",
        name,
        outcome.value,
        elapsed * 1000,
        extra={"tool": name, "kind": kind, "outcome": outcome.value},
    )
    return result
