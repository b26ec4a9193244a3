"""A real routing hook on loopback for the `webhook` strategy tests: it records every request
(headers and JSON body) and answers what the test set (`status`, `answer`), after `delay_s`."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import serve


@dataclass
class HookRequest:
    headers: dict[str, str]
    body: Any


@dataclass
class HookServer:
    status: int = 200
    answer: Any = field(default_factory=lambda: {"agent_id": "sales-agent-v1", "variables": {}})
    """A JSON-able value, or bytes sent as they are (for answers that are not JSON)."""
    delay_s: float = 0.0
    requests: list[HookRequest] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/route"

    async def start(self) -> "HookServer":
        app = web.Application()
        app.router.add_post("/route", self._handle)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append(HookRequest(dict(request.headers), json.loads(raw) if raw else None))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer).encode()
        return web.Response(status=self.status, body=body, content_type="application/json")
