"""A real HTTP server on loopback for the tool tests: it records every request it receives
(method, path, query, headers, body) and answers by route:

- `/orders/{order_id}` and anything else: 200 JSON echoing what it received;
- `/slow`: sleeps `slow_s` first; `/fail`: 500 with a text body; `/redirect`: 302 to `/orders/1`;
- `/text`: 200 text/plain; `/big`: 200 JSON with a long `items` list.
"""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import serve


@dataclass
class Received:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


@dataclass
class ToolServer:
    host: str = "127.0.0.1"
    slow_s: float = 5.0
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "ToolServer":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app, self.host)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        received = Received(
            request.method,
            request.raw_path.split("?")[0],
            list(request.query.items()),
            dict(request.headers),
            body,
        )
        self.requests.append(received)
        self.arrived.set()
        if request.path == "/slow":
            await asyncio.sleep(self.slow_s)
        if request.path == "/fail":
            return web.Response(status=500, text="database is down\n  please retry later")
        if request.path == "/redirect":
            raise web.HTTPFound("/orders/1")
        if request.path == "/text":
            return web.Response(text="plain words " * 50)
        if request.path == "/big":
            return web.json_response({"items": [{"n": n, "label": "x" * 20} for n in range(500)]})
        return web.json_response(
            {
                "method": received.method,
                "path": received.path,
                "query": received.query,
                "body": body,
                "order": {"id": received.path.rsplit("/", 1)[-1], "status": "shipped"},
            }
        )
