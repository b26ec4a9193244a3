"""A recording proxy in front of the LLM server: every chat request and its answer, as sent,
and the server's tokenizer to count them against.

    proxy = RecordingProxy("http://127.0.0.1:8088").start()
    proxy.url("switchboard")  -> http://127.0.0.1:<port>/switchboard/v1  (a worker's LOCAL_LLM_URL)

Each worker gets its own path prefix (its tag), so the requests of each system are told
apart without touching the worker. Answers are passed through chunk by chunk as they come
(streaming stays streaming); each record keeps the request body, the raw answer and the tag.
`Exchange` reads a record: the generated text, the usage llama.cpp reported (its `usage`, or
`timings.predicted_n` / `prompt_n` when a stream carries no usage) and the request's parts.

`Tokenizer` counts a text's tokens with the server's own tokenizer (llama.cpp `/tokenize`).

The proxy runs its own event loop in a thread, so a bench blocked in a synchronous wait never
delays an answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

CHAT_PATH = "v1/chat/completions"
READ_TIMEOUT_S = 600.0


@dataclass
class Exchange:
    """One chat request and what came back."""

    tag: str
    at: float
    request: dict[str, Any]
    status: int
    raw: bytes
    content: str = ""
    tool_arguments: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.request.get("stream"):
            for line in self.raw.decode(errors="replace").splitlines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                try:
                    chunk = json.loads(line.removeprefix("data: "))
                except ValueError:
                    continue
                self._read_chunk(chunk)
            return
        try:
            answer = json.loads(self.raw or b"{}")
        except ValueError:
            return
        if answer.get("choices"):
            message = answer["choices"][0].get("message") or {}
            self.content = message.get("content") or ""
            for call in message.get("tool_calls") or []:
                self.tool_arguments += call.get("function", {}).get("arguments", "")
        self.usage = answer.get("usage") or {}
        self.timings = answer.get("timings") or {}

    def _read_chunk(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            self.content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                self.tool_arguments += (call.get("function") or {}).get("arguments") or ""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("timings"):
            self.timings = chunk["timings"]

    @property
    def completion_tokens(self) -> int:
        if self.usage.get("completion_tokens") is not None:
            return int(self.usage["completion_tokens"])
        return int(self.timings.get("predicted_n", 0))

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt (what an API bills), cached or not."""
        if self.usage.get("prompt_tokens") is not None:
            return int(self.usage["prompt_tokens"])
        return int(self.timings.get("prompt_n", 0)) + int(self.timings.get("cache_n", 0))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.request.get("messages") or [])

    def system_text(self) -> str:
        return "\n".join(
            _text(m) for m in self.messages if m.get("role") in ("system", "developer")
        )

    def last_user_text(self) -> str:
        users = [_text(m) for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""

    @property
    def max_tokens(self) -> int | None:
        value = self.request.get("max_completion_tokens", self.request.get("max_tokens"))
        return None if value is None else int(value)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


class RecordingProxy:
    """Forwards `/<tag>/<path>` to `upstream/<path>`; keeps every chat exchange in `exchanges`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.exchanges: list[Exchange] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="llm-recorder")
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._error: BaseException | None = None

    def url(self, tag: str) -> str:
        return f"http://127.0.0.1:{self.port}/{tag}/v1"

    def start(self) -> RecordingProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the recording proxy did not start in 30 s")
        if self._error is not None:
            raise RuntimeError(f"the recording proxy did not start: {self._error}")
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def since(self, index: int) -> list[Exchange]:
        return list(self.exchanges[index:])

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._open())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _open(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=None, sock_read=READ_TIMEOUT_S))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tag}/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        tag, path = request.match_info["tag"], request.match_info["path"]
        body = await request.read()
        at = time.time()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.request(
            request.method, f"{self.upstream}/{path}", data=body, headers=headers
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")},
            )
            await response.prepare(request)
            raw = bytearray()
            async for piece in upstream.content.iter_any():
                raw += piece
                await response.write(piece)
            await response.write_eof()
        if path == CHAT_PATH and request.method == "POST":
            try:
                sent = json.loads(body)
            except ValueError:
                sent = {}
            self.exchanges.append(Exchange(tag, at, sent, upstream.status, bytes(raw)))
        return response


class Tokenizer:
    """The LLM server's own tokenizer (`POST /tokenize`), cached."""

    def __init__(self, llm_url: str) -> None:
        self.root = llm_url.rstrip("/").removesuffix("/v1")
        self._cache: dict[str, int] = {}

    def count(self, text: str) -> int:
        if text not in self._cache:
            body = json.dumps({"content": text, "add_special": False}).encode()
            request = urllib.request.Request(
                f"{self.root}/tokenize", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                self._cache[text] = len(json.loads(response.read())["tokens"])
        return self._cache[text]
