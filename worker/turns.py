"""Structured turns and the closing summary.

By default the turn's fields come with the reply itself, from one constrained call
(worker/turn_stream.py); they are validated here. When they do not validate, or the type
fills its fields after the reply (`turn_schema.fill: after_reply`), a separate JSON-schema
constrained call fills them. `system_response` is always the reply the user actually heard
or read, so the record can never disagree with the conversation. A turn that fails
validation is retried once, then stored flagged as failed; the conversation never waits for it.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from openai import APIError
from pydantic import ValidationError

from agent_configs.models import (
    SYSTEM_RESPONSE,
    SummarySpec,
    TurnSchema,
    describe_validation_error,
)
from worker import metrics
from worker.providers import ChatEndpoint
from worker.providers.clients import openai_client

logger = logging.getLogger("switchboard.turns")

TURN_TOPIC = "agent-turn"
SUMMARY_TOPIC = "conversation-summary"
CONTEXT_MESSAGES = 8
MAX_TEXT_CHARS = 240
MAX_ITEM_CHARS = 80
MAX_LIST_ITEMS = 8
RETRY_TEMPERATURE = 0.5  # the retry must not repeat the same deterministic mistake
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    text: str


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, usage: Any) -> None:
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens or 0
            self.completion_tokens += usage.completion_tokens or 0


@dataclass
class StreamedTurn:
    """What one constrained reply produced (worker/turn_stream.py): the reply text and the raw
    fields (None if the JSON never completed), to be validated against the schema here."""

    reply: str
    fields: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True)
class FilledTurn:
    fields: dict[str, Any]
    status: Literal["ok", "failed"]
    attempts: int
    error: str | None = None


@dataclass
class StructuredCaller:
    """Calls the agent's chat endpoints in order (primary, then fallbacks) and counts usage."""

    endpoints: list[ChatEndpoint]
    usage: Usage = field(default_factory=Usage)
    on_request: Callable[[str, int, int], None] | None = None
    """Told each answered request's model, prompt and completion tokens (the session's cost,
    worker/cost.py: livekit never sees these calls)."""

    def __post_init__(self) -> None:
        self._clients = [
            openai_client(e).with_options(timeout=REQUEST_TIMEOUT_S) for e in self.endpoints
        ]

    async def complete(
        self,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """`response_format`: a JSON schema, sent to each endpoint in the form it takes."""
        last_error: Exception | None = None
        for endpoint, client in zip(self.endpoints, self._clients, strict=True):
            try:
                response = await client.chat.completions.create(
                    model=endpoint.model,
                    messages=messages,  # type: ignore[arg-type]  # plain role/content dicts
                    **options,
                    **endpoint.structured_options(response_format),
                )
            except APIError as exc:
                metrics.LLM_ERRORS.labels(endpoint.model).inc()
                last_error = exc
                continue
            self.usage.add(response.usage)
            if self.on_request is not None:
                used = response.usage
                self.on_request(
                    endpoint.model,
                    (used.prompt_tokens or 0) if used else 0,
                    (used.completion_tokens or 0) if used else 0,
                )
            if response.usage is not None:
                metrics.LLM_TOKENS.labels(endpoint.model, "prompt").inc(
                    response.usage.prompt_tokens or 0
                )
                metrics.LLM_TOKENS.labels(endpoint.model, "completion").inc(
                    response.usage.completion_tokens or 0
                )
            return response.choices[0].message.content or ""
        raise last_error or RuntimeError("no chat endpoint configured")


def _transcript(messages: list[Message]) -> str:
    return "\n".join(f"{m.role}: {m.text}" for m in messages)


def field_guide(schema: TurnSchema) -> str:
    lines = []
    for f in schema.fields:
        if f.name == SYSTEM_RESPONSE:
            continue
        allowed = f" (one of: {', '.join(f.enum)})" if f.enum else ""
        bounds = f" ({f.min:g} to {f.max:g})" if f.min is not None and f.max is not None else ""
        lines.append(f"- {f.name}: {f.description}{allowed}{bounds}")
    return "\n".join(lines)


def _bounded(property_schema: dict[str, Any]) -> dict[str, Any]:
    """Cap free text so constrained decoding always ends: a small model can otherwise run a
    string on until max_tokens cuts it, leaving JSON that does not parse."""
    bounded = dict(property_schema)
    kinds = bounded["type"] if isinstance(bounded["type"], list) else [bounded["type"]]
    if "string" in kinds and "enum" not in bounded:
        bounded.setdefault("maxLength", MAX_TEXT_CHARS)
    if "array" in kinds:
        bounded["items"] = {**bounded["items"], "maxLength": MAX_ITEM_CHARS}
        bounded.setdefault("maxItems", MAX_LIST_ITEMS)
    return bounded


def fields_schema(schema: TurnSchema) -> dict[str, Any]:
    """What the model fills: the turn's JSON Schema without `system_response` (we fill it
    with the real reply), with free text bounded."""
    full = schema.json_schema()
    properties = {k: _bounded(v) for k, v in full["properties"].items() if k != SYSTEM_RESPONSE}
    return full | {"properties": properties, "required": list(properties)}


class TurnFiller:
    def __init__(self, caller: StructuredCaller, schema: TurnSchema, agent_name: str) -> None:
        self._caller = caller
        self._schema = schema
        self._agent_name = agent_name
        self._response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": schema.schema_id,
                "schema": fields_schema(schema),
                "strict": True,
            },
        }

    def _prompt(self, history: list[Message], reply: str) -> list[dict[str, str]]:
        system = (
            f"You annotate conversations of the {self._agent_name}. Read the conversation and "
            "the assistant's latest reply, then return JSON with these fields:\n"
            + field_guide(self._schema)
        )
        user = (
            f"Conversation:\n{_transcript(history[-CONTEXT_MESSAGES:])}\n\n"
            f"Latest assistant reply:\n{reply}\n\nReturn the JSON object only."
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    async def fill(
        self, history: list[Message], reply: str, streamed: StreamedTurn | None = None
    ) -> FilledTurn:
        """`streamed`: the fields that came with the reply itself. When they belong to this
        reply and validate, no call is made; otherwise they were attempt 1 and the call is the retry."""
        if self._schema.field_names == [SYSTEM_RESPONSE]:
            return FilledTurn(fields={SYSTEM_RESPONSE: reply}, status="ok", attempts=0)
        error = "not attempted"
        parsed: dict[str, Any] = {}
        first_call = 1
        if streamed is not None and streamed.reply.strip() == reply:  # else cut short or replaced
            first_call = 2
            parsed = streamed.fields or {}
            error = streamed.error or ""
            if streamed.fields is not None:
                try:
                    fields = self._schema.validate_turn({**streamed.fields, SYSTEM_RESPONSE: reply})
                    return FilledTurn(fields=fields, status="ok", attempts=1)
                except ValidationError as exc:
                    error = "; ".join(describe_validation_error(exc))
            logger.warning("fields streamed with the reply are invalid: %s", error)
        for attempt in range(first_call, 3):
            try:
                content = await self._caller.complete(
                    self._prompt(history, reply),
                    response_format=self._response_format,
                    temperature=0.0 if attempt == 1 else RETRY_TEMPERATURE,
                    max_tokens=800,
                )
                parsed = json.loads(content)
                if not isinstance(parsed, dict):
                    raise ValueError("the model returned JSON that is not an object")
                fields = self._schema.validate_turn({**parsed, SYSTEM_RESPONSE: reply})
                return FilledTurn(fields=fields, status="ok", attempts=attempt)
            except ValidationError as exc:
                error = "; ".join(describe_validation_error(exc))
            except (ValueError, APIError, RuntimeError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            logger.warning("turn extraction attempt %d failed: %s", attempt, error)
        safe = {k: v for k, v in parsed.items() if k in self._schema.field_names}
        return FilledTurn(
            fields={**safe, SYSTEM_RESPONSE: reply}, status="failed", attempts=2, error=error
        )


async def summarize(
    caller: StructuredCaller,
    history: list[Message],
    agent_name: str,
    max_tokens: int = SummarySpec().max_tokens,
) -> str:
    """Two or three sentences for a CRM note, at most `max_tokens` (the type's
    `summary.max_tokens`); empty conversations get a fixed note."""
    if not any(m.role == "user" for m in history):
        return "The user did not say anything."
    messages = [
        {
            "role": "system",
            "content": f"You write short notes about conversations handled by the {agent_name}. "
            "Summarize what the user wanted and the outcome in two or three sentences.",
        },
        {"role": "user", "content": _transcript(history[-40:])},
    ]
    return (await caller.complete(messages, temperature=0.2, max_tokens=max_tokens)).strip()
