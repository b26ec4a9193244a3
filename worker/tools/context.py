"""What a tool call runs with (ToolContext), what it leaves behind (ToolCallRecord), and the one
wrapper every kind of tool goes through (`recorded_call`), so each call is validated, timed,
recorded, counted and turned into a result the model can read, whatever the kind."""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from jsonschema import Draft202012Validator
from livekit.agents import llm

from agent_configs.egress import EgressPolicy
from worker import metrics

logger = logging.getLogger("switchboard.tools")

PREVIEW_CHARS = 200
TRUNCATED = "...[truncated]"


@dataclass(frozen=True)
class ToolCallRecord:
    """One call, as recorded on the turn and published with it. `arguments` are the model's
    own: header values (secrets included) never appear here."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    duration_ms: int
    result_preview: str
    """At most PREVIEW_CHARS of what went back to the model."""
    error: str | None = None
    """"timeout after 5.0s", "HTTP 503", "refused by the egress policy: ..."."""

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.error is None:
            del record["error"]
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
    say: Callable[[str], Awaitable[None]] | None
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
        result = error_result(failure.message)
    except llm.ToolError as failure:  # livekit's own way to say it (MCP tools, plugins)
        error, outcome = failure.message, Outcome.ERROR
        result = error_result(failure.message)
    except Exception as exc:  # a bug in a tool (a plugin's, say) must not end the session
        logger.exception("tool %s failed", name, extra={"tool": name, "kind": kind})
        error, outcome = f"internal error ({type(exc).__name__})", Outcome.ERROR
        result = error_result(error)
    elapsed = time.perf_counter() - started
    context.log.add(
        ToolCallRecord(
            name=name,
            arguments=arguments,
            ok=outcome is Outcome.OK,
            duration_ms=round(elapsed * 1000),
            result_preview=cut(result, PREVIEW_CHARS),
            error=error,
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
