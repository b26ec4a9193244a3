"""A simulated OpenAI-compatible model: a fixed time to first token, then a fixed token rate.

    .venv/bin/python -m bench.simulated_llm --port 0 --ttft-ms 300 --tokens-per-s 50

prints `simulated-llm listening on http://127.0.0.1:PORT/v1` once it accepts connections and
serves until SIGTERM/SIGINT. On 2 cores the local CPU model is the ceiling of every bench, so
the worker's own cost is measured against this endpoint instead: both the bare worker and
Switchboard ask it in the same run, and it runs as its own process so its CPU is never
counted as a worker's.

What it answers (`POST /v1/chat/completions`, streamed as OpenAI streams, or not):
- a plain request: a few short sentences derived from the last user message (a hash picks
  them), so the same message always gets the same reply;
- `response_format: json_schema` (or an LLGuidance `grammar` of `%json {...}`, as llama.cpp
  takes it): a valid object for the schema as compact JSON, with
  `system_response` (the reply, streamed to the user while it is written) as its first key
  when the schema has it; every other property gets the simplest valid value (`example_of`);
- tools: tool calls when `tool_choice` is "required" or names a function, or when the last
  user message says `call <tool_name>` for an offered tool (each such tool, in the order
  named, as parallel calls); arguments are the simplest valid object for the parameters.
  Once a `role: tool` message follows the last user message, it answers normally.

Time: the first token `ttft_s` after the request arrived, then one every `1/tokens_per_s`
seconds, on an absolute schedule (a late event loop sends what is due in one write, it never
drifts). `max_tokens` / `max_completion_tokens` cut the answer (finish_reason "length").

Tokens (`tokenize`), the way a BPE tokenizer splits English and compact JSON: a word of up to
10 letters with one space (and an underscore) before it, up to 3 digits, a run of up to 3
punctuation characters, or whitespace. "Happy to help." is `Happy`,` to`,` help`,`.`, and
`{"system_response":"` is `{"`,`system`,`_response`,`":"`. Measured against GPT-2's BPE
(Whisper's tokenizer.json): the same count on the replies, 2-21% fewer on the turn schemas'
JSON answers and on the schemas themselves (GPT-2 splits a few words this keeps whole); a
word-piece-of-4 split counted 1.6-1.9x GPT-2 on JSON and so made the reply's prefix cost 10
tokens (200 ms at 50 tokens/s) instead of 4. Completion tokens are the deltas
streamed (each content delta is one token; a tool call's name is one). Prompt tokens are the
tokens of every message's text (content, tool calls) plus 4 per message, plus the tools and
the response schema as compact JSON, as OpenAI bills them.

`GET /stats` counts requests, tokens and concurrency (also split by kind: `reply`,
`json_schema`, `tools` = answered with tool calls); `POST /stats/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from aiohttp import web

SYSTEM_RESPONSE = "system_response"
"""The reply field the worker streams to the user (agent_configs.models.SYSTEM_RESPONSE)."""
MAX_BODY_BYTES = 4 * 1024 * 1024
MESSAGE_OVERHEAD_TOKENS = 4
KINDS = ("reply", "json_schema", "tools")
LISTENING = "simulated-llm listening on "
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0

_LETTER = r"[^\W\d_]"
_TOKEN = re.compile(rf" ?_?{_LETTER}{{1,10}}| ?\d{{1,3}}| ?(?:[^\w\s]|_){{1,3}}|\s+(?!\S)|\s")

_SENTENCES = (
    "Thanks for reaching out.",
    "I can help with that.",
    "Let me look into it for you.",
    "Your request is noted.",
    "Here is what I found.",
    "That should be ready soon.",
    "I have checked the details.",
    "Everything looks fine on our side.",
    "You will get an update by email.",
    "Please keep your reference number handy.",
    "The team is already on it.",
    "It usually takes a day or two.",
    "I have updated your account.",
    "Nothing else is needed from you.",
    "We can change that at any time.",
    "Let me know if anything is unclear.",
)


# -- text ---------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """BPE-like pieces (module docstring): `"".join(tokenize(t)) == t` for every text."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _text_of(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD_TOKENS + count_tokens(_text_of(message.get("content")))
        if message.get("tool_calls"):
            total += count_tokens(_compact(message["tool_calls"]))
    if body.get("tools"):
        total += count_tokens(_compact(body["tools"]))
    schema = _json_schema(body)
    if schema is not None:
        total += count_tokens(_compact(schema))
    return total


def reply_for(message: str, sentences: int = 3) -> str:
    """A few short sentences picked by a hash of the message: the same message, the same reply."""
    digest = hashlib.sha256(message.encode()).digest()
    picked: list[str] = []
    for byte in digest:
        sentence = _SENTENCES[byte % len(_SENTENCES)]
        if sentence not in picked:
            picked.append(sentence)
        if len(picked) == sentences:
            break
    return " ".join(picked)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _last_user_index(messages: list[Any]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], dict) and messages[index].get("role") == "user":
            return index
    return None


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    index = _last_user_index(messages)
    if index is None:  # e.g. a greeting asked for with instructions only
        return _text_of(messages[-1].get("content")) if messages else ""
    return _text_of(messages[index].get("content"))


# -- schemas ------------------------------------------------------------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
    return _resolve(target, root) if isinstance(target, dict) else {}


def example_of(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """The simplest value a JSON schema accepts: enums their first non-null value, every
    property of an object (required ones always), strings "noted" fitted to minLength/maxLength,
    numbers their minimum (or 0 within the bounds), arrays their minItems of simplest items."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            branches = [_resolve(b, root) for b in schema[combinator]]
            chosen = next((b for b in branches if b.get("type") != "null"), branches[0])
            return example_of(chosen, root)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged |= _resolve(part, root)
        return example_of(merged | {k: v for k, v in schema.items() if k != "allOf"}, root)
    kinds = schema.get("type", "object" if "properties" in schema else "string")
    kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
    if kind == "object":
        return {name: example_of(spec, root) for name, spec in schema.get("properties", {}).items()}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [example_of(schema.get("items", {}), root) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _fit("noted", schema)


def _number(schema: dict[str, Any], kind: str) -> int | float:
    low = schema.get("minimum")
    if low is None and "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + (1 if kind == "integer" else 0.5)
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value = low if low is not None else (0 if high is None or high > 0 else high - 1)
    return int(value) if kind == "integer" else float(value)


def _fit(text: str, schema: dict[str, Any]) -> str:
    """`text` cut to maxLength (at a word when it can) and padded to minLength."""
    longest = schema.get("maxLength")
    if longest is not None and len(text) > longest:
        cut = text[:longest]
        words = cut.rsplit(" ", 1)[0] if " " in cut.strip() else cut
        text = words if len(words) >= schema.get("minLength", 0) else cut
    shortest = schema.get("minLength", 0)
    if len(text) < shortest:
        text = (text + " " + "x" * shortest)[:shortest] if text else "x" * shortest
    return text


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema a request asks for: OpenAI's `response_format`, or an LLGuidance grammar
    (`%json {...}`, llama.cpp's `grammar` field, as the worker asks an embedded llama.cpp)."""
    grammar = body.get("grammar")
    if isinstance(grammar, str) and "%json " in grammar:
        try:
            schema, _ = json.JSONDecoder().raw_decode(grammar.split("%json ", 1)[1])
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            return schema
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else {}


def json_answer(schema: dict[str, Any], reply: str) -> str:
    """Compact JSON valid for `schema`, `system_response` (the reply) first when it exists."""
    value = example_of(schema)
    properties = _resolve(schema, schema).get("properties", {})
    if isinstance(value, dict) and SYSTEM_RESPONSE in properties:
        spec = _resolve(properties[SYSTEM_RESPONSE], schema)
        value = {SYSTEM_RESPONSE: _fit(reply, spec)} | {
            k: v for k, v in value.items() if k != SYSTEM_RESPONSE
        }
    return _compact(value)


# -- tools --------------------------------------------------------------------------------


def offered_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's function tools, by name, with their parameter schema."""
    offered: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            function = tool.get("function") or {}
            if isinstance(function.get("name"), str):
                offered[function["name"]] = function.get("parameters") or {"type": "object"}
    return offered


def requested_tool_calls(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The calls to answer with: (name, arguments) in order; [] for a normal answer."""
    offered = offered_tools(body)
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    last_user = _last_user_index(messages)
    after_user = messages[last_user + 1 :] if last_user is not None else messages
    if (
        not offered
        or choice == "none"
        or any(isinstance(m, dict) and m.get("role") == "tool" for m in after_user)
    ):
        return []
    names: list[str]
    if isinstance(choice, dict):
        named = (choice.get("function") or {}).get("name")
        names = [named] if named in offered else []
    else:
        text = last_user_text(body)
        spots = sorted(
            (match.start(), name)
            for name in offered
            for match in re.finditer(rf"\bcall {re.escape(name)}\b", text)
        )
        names = list(dict.fromkeys(name for _, name in spots))
        if not names and choice == "required":
            names = [next(iter(offered))]
        if body.get("parallel_tool_calls") is False:
            names = names[:1]
    return [(name, example_of(offered[name])) for name in names]


def chat_chunk(
    completion_id: str,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None,
    *,
    usage: bool = False,
) -> dict[str, Any]:
    """One `chat.completion.chunk` as OpenAI streams it (`usage: null` when usage was asked)."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage:
        chunk["usage"] = None
    return chunk


def tool_call_deltas(
    calls: list[tuple[str, str]], call_ids: list[str], argument_pieces: list[list[str]]
) -> list[dict[str, Any]]:
    """The deltas OpenAI streams for tool calls `(name, arguments)`: per call, one delta with
    its index, id and name (and the role on the first), then one per piece of its arguments."""
    deltas: list[dict[str, Any]] = []
    for index, ((name, _), call_id, pieces) in enumerate(
        zip(calls, call_ids, argument_pieces, strict=True)
    ):
        head = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        first: dict[str, Any] = {"tool_calls": [head]}
        deltas.append({"role": "assistant", "content": None, **first} if index == 0 else first)
        deltas.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]} for piece in pieces
        )
    return deltas


def tool_call_message(calls: list[tuple[str, str]], call_ids: list[str]) -> dict[str, Any]:
    """The non-streamed assistant message that calls `(name, arguments)`."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for (name, args), call_id in zip(calls, call_ids, strict=True)
        ],
    }


# -- counters -----------------------------------------------------------------------------


@dataclass
class Counters:
    requests: int = 0
    streamed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self) -> None:
        """Everything to zero but what is in flight now (those requests still end)."""
        in_flight = self.in_flight
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)
        self.in_flight = self.max_in_flight = in_flight


@dataclass
class Stats:
    total: Counters = field(default_factory=Counters)
    by_kind: dict[str, Counters] = field(
        default_factory=lambda: {kind: Counters() for kind in KINDS}
    )

    def begin(self, kind: str, prompt: int, streamed: bool) -> None:
        for counters in (self.total, self.by_kind[kind]):
            counters.requests += 1
            counters.streamed_requests += streamed
            counters.prompt_tokens += prompt
            counters.in_flight += 1
            counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)

    def generated(self, kind: str, tokens: int) -> None:
        self.total.completion_tokens += tokens
        self.by_kind[kind].completion_tokens += tokens

    def end(self, kind: str) -> None:
        self.total.in_flight -= 1
        self.by_kind[kind].in_flight -= 1

    def reset(self) -> None:
        self.total.reset()
        for counters in self.by_kind.values():
            counters.reset()

    def as_json(self) -> dict[str, Any]:
        return asdict(self.total) | {
            "tool_call_responses": self.by_kind["tools"].requests,
            "json_schema_responses": self.by_kind["json_schema"].requests,
            "by_kind": {kind: asdict(counters) for kind, counters in self.by_kind.items()},
        }


# -- the server ---------------------------------------------------------------------------


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return web.json_response(body, status=status)


@dataclass
class SimulatedLLM:
    ttft_s: float = 0.3
    tokens_per_s: float = 50.0
    port: int = 0
    reply_sentences: int = 3
    stats: Stats = field(default_factory=Stats)
    _runner: web.AppRunner | None = None
    _completions: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": "simulated", "object": "model", "created": 0, "owned_by": "bench"}
        return web.json_response({"object": "list", "data": [model]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    async def _reset(self, request: web.Request) -> web.Response:
        self.stats.reset()
        return web.json_response(self.stats.as_json())

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        arrived = asyncio.get_running_loop().time()
        try:
            body = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        except ValueError as exc:
            return _error(400, f"the request body is not JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "messages: a list of messages is required", "messages")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return _error(400, "max_tokens: must be a positive integer", "max_tokens")
        self._completions += 1
        completion_id = f"chatcmpl-sim-{self._completions}"
        model = str(body.get("model") or "simulated")
        calls = requested_tool_calls(body)
        schema = _json_schema(body)
        reply = reply_for(last_user_text(body), self.reply_sentences)
        if calls:
            kind = "tools"
            arguments = [(name, _compact(args)) for name, args in calls]
            call_ids = [f"call_sim_{self._completions}_{i}" for i in range(len(calls))]
            pieces = [tokenize(args) for _, args in arguments]
            deltas = tool_call_deltas(arguments, call_ids, pieces)
            finish = "tool_calls"
        else:
            kind = "reply" if schema is None else "json_schema"
            content = reply if schema is None else json_answer(schema, reply)
            deltas = [{"content": token} for token in tokenize(content)]
            if deltas:
                deltas[0] = {"role": "assistant", **deltas[0]}
            finish = "stop"
        if limit is not None and len(deltas) > limit:
            deltas, finish = deltas[:limit], "length"
        streamed = bool(body.get("stream"))
        prompt = prompt_tokens(body)
        self.stats.begin(kind, prompt, streamed)
        try:
            if streamed:
                return await self._stream(
                    request, body, arrived, completion_id, model, deltas, finish, kind, prompt
                )
            await self._sleep_until(arrived + self._due(max(len(deltas) - 1, 0)))
            self.stats.generated(kind, len(deltas))
            if calls:
                message = tool_call_message(arguments, call_ids)
            else:
                text = "".join(d["content"] for d in deltas)
                message = {"role": "assistant", "content": text}
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": _usage(prompt, len(deltas)),
                }
            )
        finally:
            self.stats.end(kind)

    def _due(self, index: int) -> float:
        """Seconds from arrival to token `index` (0-based)."""
        return self.ttft_s + index / self.tokens_per_s

    @staticmethod
    async def _sleep_until(deadline: float) -> None:
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        arrived: float,
        completion_id: str,
        model: str,
        deltas: list[dict[str, Any]],
        finish: str,
        kind: str,
        prompt: int,
    ) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        sent = 0
        try:
            while sent < len(deltas):
                await self._sleep_until(arrived + self._due(sent))
                # everything due by now goes in one write: a busy loop never drifts
                due = sent + 1
                while due < len(deltas) and arrived + self._due(due) <= loop.time():
                    due += 1
                events = [
                    _event(chat_chunk(completion_id, model, delta, None, usage=include_usage))
                    for delta in deltas[sent:due]
                ]
                await response.write(b"".join(events))
                self.stats.generated(kind, due - sent)
                sent = due
            tail = [_event(chat_chunk(completion_id, model, {}, finish, usage=include_usage))]
            if include_usage:
                usage_chunk = chat_chunk(completion_id, model, {}, None) | {
                    "choices": [],
                    "usage": _usage(prompt, sent),
                }
                tail.append(_event(usage_chunk))
            tail.append(b"data: [DONE]\n\n")
            await response.write(b"".join(tail))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client left: what was sent is counted, nothing else is generated
        return response


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {_compact(chunk)}\n\n".encode()


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


# -- as a process -------------------------------------------------------------------------


class SimulatedLLMProcess:
    """The simulator in a process of its own (its CPU is not the bench's), stopped by its id."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, log: IO[str]) -> None:
        self.process = process
        self.base_url = base_url
        self._log = log
        # loopback only: a proxy from the environment must never see these requests
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def _ask(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.root_url + path, method=method, data=None)
        with self._opener.open(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def stats(self) -> dict[str, Any]:
        return self._ask("GET", "/stats")

    def reset_stats(self) -> dict[str, Any]:
        return self._ask("POST", "/stats/reset")

    def stop(self) -> None:
        """Terminate, wait, kill after a bound."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulated_llm(
    ttft_ms: float, tokens_per_s: float, log_path: Path, reply_sentences: int = 3
) -> SimulatedLLMProcess:
    """Start `python -m bench.simulated_llm` on a free port; returns once it accepts connections."""
    repo_root = Path(__file__).resolve().parent.parent
    log = open(log_path, "a")  # closed by SimulatedLLMProcess.stop
    command = [
        sys.executable,
        "-m",
        "bench.simulated_llm",
        "--port",
        "0",
        "--ttft-ms",
        str(ttft_ms),
        "--tokens-per-s",
        str(tokens_per_s),
        "--reply-sentences",
        str(reply_sentences),
    ]
    environment = os.environ | {"PYTHONPATH": str(repo_root)}
    process = subprocess.Popen(
        command, cwd=repo_root, stdout=subprocess.PIPE, stderr=log, text=True, env=environment
    )
    assert process.stdout is not None
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline()),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(START_TIMEOUT_S)
    line = first_line[0].strip() if first_line else ""
    if not line.startswith(LISTENING):
        running = SimulatedLLMProcess(process, "", log)
        running.stop()
        raise RuntimeError(
            f"the simulated LLM did not start within {START_TIMEOUT_S:.0f} s "
            f"(first line {line!r}, exit code {process.returncode}); see {log_path}"
        )
    return SimulatedLLMProcess(process, line.removeprefix(LISTENING), log)


async def _serve(simulator: SimulatedLLM) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with simulator:
        print(f"{LISTENING}{simulator.base_url}", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--ttft-ms", type=float, default=300.0, help="time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=50.0, help="tokens after the first")
    parser.add_argument("--reply-sentences", type=int, default=3, help="sentences in a plain reply")
    args = parser.parse_args(argv)
    if args.tokens_per_s <= 0 or args.ttft_ms < 0:
        parser.error("--tokens-per-s must be > 0 and --ttft-ms >= 0")
    simulator = SimulatedLLM(
        ttft_s=args.ttft_ms / 1000,
        tokens_per_s=args.tokens_per_s,
        port=args.port,
        reply_sentences=args.reply_sentences,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(simulator))


if __name__ == "__main__":
    main()
