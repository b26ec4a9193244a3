"""The reply and its turn fields from one constrained LLM call, the reply streamed out as it comes.

The turn schema starts with `system_response` (the words the user hears or reads), so a
JSON-schema constrained reply emits that string first: its characters are passed on to the
transcription and TTS while the model is still writing them, and the other fields (category,
sentiment, ...) arrive in the same generation. One LLM request per turn instead of two, and
the fields describe exactly the reply that was given. The turn ends for the user when the
reply's string closes; the fields finish in the background.

A reply cut short (interrupted, or JSON that does not parse) still reaches the user as far
as it got; its fields are then filled by the separate extraction call (worker/turns.py), which
counts as the retry.

Tools: the same request carries the agent's tools, and the model either calls tools or writes
the JSON (OpenAI decides per generation). A generation that calls tools has its tool-call
chunks passed through untouched: livekit runs the tools, adds the calls and their results to
the chat context and asks `llm_node` again, and that next generation is another constrained
call. So a turn is: user message -> (tool calls -> results)* -> the reply and its fields, and
the fields always come from the final generation, the one whose reply the user got.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

from livekit.agents import llm
from pydantic_core import from_json

from agent_configs.models import SYSTEM_RESPONSE, TurnSchema
from worker.turns import StreamedTurn, field_guide, fields_schema

logger = logging.getLogger("switchboard.turn_stream")

CHARS_PER_TOKEN = 4
"""Rough size of a token in English text: turns a reply's token cap into a character cap."""
SHORT_VALUE_TOKENS = 4
"""An enum value, a number, true/false or null, with its quotes and comma."""


def reply_max_chars(max_tokens: int | None) -> int | None:
    return None if max_tokens is None else max_tokens * CHARS_PER_TOKEN


def fields_token_budget(schema: TurnSchema) -> int:
    """The most the other fields can take, from their bounded schema: keys, short values,
    capped strings and lists. An upper bound for `max_tokens`, not what they usually take."""
    budget = 0
    for name, spec in fields_schema(schema)["properties"].items():
        budget += len(name) // CHARS_PER_TOKEN + SHORT_VALUE_TOKENS
        if "maxLength" in spec:
            budget += spec["maxLength"] // CHARS_PER_TOKEN
        if "maxItems" in spec:
            budget += spec["maxItems"] * (
                spec["items"]["maxLength"] // CHARS_PER_TOKEN + SHORT_VALUE_TOKENS
            )
    return budget


def call_max_tokens(max_tokens: int | None, schema: TurnSchema) -> int | None:
    """The call writes the reply and the fields: the reply keeps its own budget."""
    return None if max_tokens is None else max_tokens + fields_token_budget(schema)


def response_format(schema: TurnSchema, max_tokens: int | None, *, bounded: bool) -> dict[str, Any]:
    """`system_response` first (streamed). `bounded` (llama.cpp, which honours string lengths):
    never empty, and short enough that the JSON closes within the token budget."""
    reply: dict[str, Any] = {"type": "string", "description": schema.fields[0].description}
    if bounded:
        reply["minLength"] = 1
        limit = reply_max_chars(max_tokens)
        if limit is not None:
            reply["maxLength"] = limit
    others = fields_schema(schema)
    properties = {SYSTEM_RESPONSE: reply, **others["properties"]}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.schema_id,
            "schema": others | {"properties": properties, "required": list(properties)},
            "strict": True,
        },
    }


def instructions(agent_instructions: str, schema: TurnSchema) -> str:
    return (
        f"{agent_instructions}\n\nWrite each answer as a JSON object. Its first key, "
        f'"{SYSTEM_RESPONSE}", holds your whole reply to the user, in your own words, as you would '
        f"say it to them. The other keys describe the conversation so far:\n{field_guide(schema)}"
    )


class ReplyExtractor:
    """Feed it the model's JSON as it streams; it returns the new characters of the reply.

    An endpoint that ignores `response_format` answers in plain text: then the text is the
    reply, passed on as it comes, and the fields are left to the extraction call.
    """

    def __init__(self) -> None:
        self._raw = ""
        self._reply = ""
        self._plain: bool | None = None
        self.reply_done = False
        """The reply's string has closed: what follows are only the other fields."""

    def feed(self, delta: str) -> str:
        self._raw += delta
        if self._plain is None and self._raw.strip():
            self._plain = not self._raw.lstrip().startswith("{")
        if self._plain:
            self._reply += delta
            return delta
        if self.reply_done:
            return ""
        self.reply_done = SYSTEM_RESPONSE in from_json(self._raw, allow_partial=True)
        partial = from_json(self._raw, allow_partial="trailing-strings")
        reply = partial.get(SYSTEM_RESPONSE) if isinstance(partial, dict) else None
        if not isinstance(reply, str) or not reply.startswith(self._reply):
            return ""
        new, self._reply = reply[len(self._reply) :], reply
        return new

    def finish(self) -> StreamedTurn:
        if self._plain:
            return StreamedTurn(self._reply, None, "the model answered in plain text, not JSON")
        try:
            parsed = from_json(self._raw)
        except ValueError as exc:
            return StreamedTurn(self._reply, None, f"the reply's JSON is incomplete: {exc}")
        if not isinstance(parsed, dict):
            return StreamedTurn(self._reply, None, "the reply's JSON is not an object")
        return StreamedTurn(self._reply, {k: v for k, v in parsed.items() if k != SYSTEM_RESPONSE})


def tool_calls_only(chunk: llm.ChatChunk) -> llm.ChatChunk:
    """The chunk's tool calls, without any text: the JSON around the reply never reaches the user."""
    assert chunk.delta is not None
    return llm.ChatChunk(
        id=chunk.id, delta=llm.ChoiceDelta(role="assistant", tool_calls=chunk.delta.tool_calls)
    )


class StreamedReply:
    """One constrained call, read in the background. `words()` yields the reply as it is
    written (and, as ChatChunks, any tool calls the model makes instead) and ends as soon as
    the reply's string closes, so the turn is over for the user while the model is still
    filling the other fields; `turn` resolves when those are done.

    If the words stop being read before the reply ended (the user interrupted), the call is
    cancelled; `turn` then holds what was said, without fields.
    """

    def __init__(self, stream: llm.LLMStream) -> None:
        self._stream = stream
        self._extractor = ReplyExtractor()
        self._words: asyncio.Queue[str | llm.ChatChunk | BaseException | None] = asyncio.Queue()
        self._reply_ended = False
        self.turn: asyncio.Future[StreamedTurn] = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read(), name="switchboard.streamed_reply")

    async def words(self) -> AsyncGenerator[str | llm.ChatChunk, None]:
        ended = False
        try:
            while (item := await self._words.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
            ended = True
        finally:
            if not ended:
                self._reading.cancel()

    async def _read(self) -> None:
        try:
            async with self._stream as stream:
                async for chunk in stream:
                    if chunk.delta is None:
                        continue
                    if chunk.delta.tool_calls:
                        self._pass_tool_calls(chunk)
                    content = chunk.delta.content
                    if not content:
                        continue
                    words = self._extractor.feed(content)
                    if words:
                        self._words.put_nowait(words)
                    if self._extractor.reply_done:
                        self._end_words(None)
        except (
            Exception
        ) as exc:  # before the reply ended it is the reply's error, the session's to handle
            if self._reply_ended:
                logger.warning("the reply's fields were cut off: %s", exc)
            self._end_words(exc)
        finally:
            self._end_words(None)
            if not self.turn.done():
                self.turn.set_result(self._extractor.finish())

    def _pass_tool_calls(self, chunk: llm.ChatChunk) -> None:
        if self._reply_ended:  # the user already has the reply: a late call would answer nothing
            names = ", ".join(t.name for t in chunk.delta.tool_calls) if chunk.delta else ""
            logger.warning("tool calls after the reply's string closed were dropped: %s", names)
            return
        self._words.put_nowait(tool_calls_only(chunk))

    def _end_words(self, last: BaseException | None) -> None:
        if not self._reply_ended:
            self._reply_ended = True
            self._words.put_nowait(last)
            if last is not None:
                self._words.put_nowait(None)
