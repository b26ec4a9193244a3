"""The OpenAI-compatible chat clients (worker/providers/clients.py) reach only the endpoint a
config names and read its replies bounded, like the http tool: a redirect is not followed, the
environment's proxy variables are not used, and a body past the cap is cut off, not read whole.
Every peer is a loopback server of the test's own."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.loopback import proxy_everything_to, serve
from worker.bounded_http import ResponseTooLarge
from worker.providers.clients import MAX_RESPONSE_BYTES, openai_client
from worker.providers.registry import ChatEndpoint

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "straight from the endpoint"},
            "finish_reason": "stop",
        }
    ],
}
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def endpoint(port: int) -> ChatEndpoint:
    return ChatEndpoint(
        provider="openai",
        model="m",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="key-for-the-endpoint-only",
        temperature=0.0,
        max_tokens=None,
        top_p=None,
    )


@dataclass
class Peer:
    """A loopback server that records every request (method, path) it receives."""

    answer: Any
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    async def start(self) -> "Peer":
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, str(request.url)))
            return await self.answer(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def completion(request: web.Request) -> web.StreamResponse:
    await request.read()
    return web.json_response(COMPLETION)


async def bad_gateway(request: web.Request) -> web.StreamResponse:
    return web.Response(status=502, text="a proxy that should never have been asked")


async def test_a_redirect_from_the_chat_endpoint_is_not_followed() -> None:
    elsewhere = await Peer(completion).start()

    async def redirect(request: web.Request) -> web.StreamResponse:
        location = f"http://127.0.0.1:{elsewhere.port}{request.path}"
        return web.Response(status=307, headers={"Location": location})

    redirecting = await Peer(redirect).start()
    try:
        with pytest.raises(openai.APIStatusError) as refused:
            await openai_client(endpoint(redirecting.port)).chat.completions.create(
                model="m", messages=MESSAGES
            )
        assert refused.value.status_code == 307
        assert len(redirecting.requests) == 1
        assert elsewhere.requests == [], "the redirect's target must never be asked"
    finally:
        await redirecting.stop()
        await elsewhere.stop()


async def test_the_environments_proxy_variables_are_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = await Peer(bad_gateway).start()
    chat = await Peer(completion).start()
    try:
        proxy_everything_to(monkeypatch, proxy.port)

        reply = await openai_client(endpoint(chat.port)).chat.completions.create(
            model="m", messages=MESSAGES
        )

        assert reply.choices[0].message.content == "straight from the endpoint"
        assert len(chat.requests) == 1
        assert proxy.requests == [], "a proxy is one more host that would see the prompt and key"
    finally:
        await chat.stop()
        await proxy.stop()


@dataclass
class Flood:
    """Answers with a body of JSON whitespace four times the cap long, and counts what it got
    to write before the client hung up."""

    sent: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            while self.sent < 4 * MAX_RESPONSE_BYTES:
                await response.write(chunk)
                self.sent += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client hung up: what this test wants to see
        finally:
            self.finished.set()
        return response


async def test_a_reply_larger_than_the_cap_is_cut_off_instead_of_read_whole() -> None:
    flood = Flood()
    chat = await Peer(flood).start()
    try:
        with pytest.raises(ResponseTooLarge, match=f"larger than {MAX_RESPONSE_BYTES} bytes"):
            await openai_client(endpoint(chat.port)).chat.completions.create(
                model="m", messages=MESSAGES
            )
        await asyncio.wait_for(flood.finished.wait(), 30)
        # what the sockets of both ends buffer comes on top of the cap, never the whole body
        assert flood.sent < MAX_RESPONSE_BYTES + 8 * 1024 * 1024
    finally:
        await chat.stop()
