"""A scripted OpenAI-compatible chat endpoint on loopback, for fault tests.

It answers at once with a fixed reply (no CPU model to wait for), can be stopped (the port is
then closed: connection refused, exactly what the worker sees when the LLM server is
stopped) and started again on the same port, and can hold a reply open after its
`system_response` string has closed, so a turn's fields never arrive.

Tool calls: a test plans them (`plan_tool_call`); each request that offers the next planned
call's tool gets that call instead of a reply (streamed the way OpenAI streams tool calls,
whether or not the request also asks for a JSON schema, as OpenAI does), and the requests
after it, which carry the tool's result, get the reply. `requests` keeps every request body,
so a test reads what the model was sent (messages, tools, tool results).

The simplest valid values and the shape of streamed tool calls come from the benches'
simulated model (bench/simulated_llm.py), so both endpoints answer alike.
"""

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agent_configs.models import LLMSpec
from bench.simulated_llm import chat_chunk, example_of, tool_call_deltas, tool_call_message

REPLY = "Happy to help with that."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks for: as OpenAI's `response_format`, or as the LLGuidance
    grammar (`%json {...}`) the worker sends a server it knows to be the embedded llama.cpp
    (LOCAL_LLM_EMBEDDED, which tests that point LOCAL_LLM_URL here inherit)."""
    grammar = body.get("grammar")
    if isinstance(grammar, str) and "%json " in grammar:
        return dict(json.loads(grammar.split("%json ", 1)[1]))
    return (body.get("response_format") or {}).get("json_schema", {}).get("schema")


@dataclass(frozen=True)
class PlannedToolCall:
    name: str
    arguments: dict[str, Any]


def offered_tools(body: dict[str, Any]) -> list[str]:
    return [
        tool["function"]["name"]
        for tool in body.get("tools") or []
        if tool.get("type") == "function"
    ]


def tool_results(body: dict[str, Any]) -> list[str]:
    """The results the request carries back to the model (`role: tool` messages)."""
    return [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "tool"]


@dataclass
class ScriptedLLM:
    reply: str = REPLY
    stall_after_reply: bool = False
    """Streamed constrained replies: send the reply's string, then never the other fields."""
    port: int = field(default_factory=_free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    planned_calls: list[PlannedToolCall] = field(default_factory=list)
    _call_count: int = 0
    _runner: web.AppRunner | None = None
    _stalled: set[asyncio.Event] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def llm(self) -> LLMSpec:
        """An agent type's `llm` that asks this endpoint (agent_changed(..., llm=scripted.llm()))."""
        return LLMSpec(provider="local", model="scripted", base_url=self.url)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    def plan_tool_call(self, name: str, **arguments: Any) -> None:
        """The next request that offers tool `name` gets a call of it with `arguments`."""
        self.planned_calls.append(PlannedToolCall(name, arguments))

    def _next_call(self, body: dict[str, Any]) -> PlannedToolCall | None:
        if self.planned_calls and self.planned_calls[0].name in offered_tools(body):
            return self.planned_calls.pop(0)
        return None

    async def __aenter__(self) -> "ScriptedLLM":
        """`async with ScriptedLLM() as endpoint`: started for the block, stopped after it
        even when the block fails (what every fixture of it does)."""
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Close the port and every open connection: from now on, connection refused."""
        for stalled in self._stalled:
            stalled.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        planned = self._next_call(body)
        if planned is not None:
            return await self._call_tool(request, body, planned)
        schema = requested_schema(body)
        if schema is not None:
            values = example_of(schema)
            if "system_response" in values:
                values["system_response"] = self.reply
            content = json.dumps(values)
        else:
            content = self.reply
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "scripted"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if schema is not None and self.stall_after_reply:
            cut = (
                content.index('"system_response"')
                + len(json.dumps({"system_response": self.reply}))
                - 1
            )
            await self._send(response, body, content[:cut])  # the reply's string has closed here
            stalled = asyncio.Event()
            self._stalled.add(stalled)
            with contextlib.suppress(asyncio.CancelledError):
                await stalled.wait()
            return response
        for start in range(0, len(content), 8):
            await self._send(response, body, content[start : start + 8])
        await self._send(response, body, None)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _call_tool(
        self, request: web.Request, body: dict[str, Any], planned: PlannedToolCall
    ) -> web.StreamResponse:
        self._call_count += 1
        call_id = f"call_scripted_{self._call_count}"
        arguments = json.dumps(planned.arguments)
        if not body.get("stream"):
            message = tool_call_message([(planned.name, arguments)], [call_id])
            return web.json_response(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "scripted"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        # 16 characters a piece, as OpenAI streams them, but at most 64 pieces: a megabyte of
        # arguments in 16-character pieces is 62,500 events the worker parses one by one
        # (test_tool_turns' megabyte test took 13.2 s with them, 0.8 s in 64 pieces).
        size = max(16, -(-len(arguments) // 64))
        pieces = [arguments[start : start + size] for start in range(0, len(arguments), size)]
        for delta in tool_call_deltas([(planned.name, arguments)], [call_id], [pieces]):
            await self._send_delta(response, body, delta, None)
        await self._send_delta(response, body, {}, "tool_calls")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @staticmethod
    async def _send_delta(
        response: web.StreamResponse,
        body: dict[str, Any],
        delta: dict[str, Any],
        finish_reason: str | None,
    ) -> None:
        chunk = chat_chunk("chatcmpl-scripted", body.get("model", "scripted"), delta, finish_reason)
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    @staticmethod
    async def _send(
        response: web.StreamResponse, body: dict[str, Any], content: str | None
    ) -> None:
        delta = {"role": "assistant", "content": content} if content is not None else {}
        finish_reason = None if content is not None else "stop"
        chunk = chat_chunk("chatcmpl-scripted", body.get("model", "scripted"), delta, finish_reason)
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
