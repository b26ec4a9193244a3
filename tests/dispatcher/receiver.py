"""A real webhook receiver on loopback for the dispatcher tests (Starlette under uvicorn, in a
thread): it verifies each request's Standard Webhooks signature with the `standardwebhooks`
library, records it, and answers as the test says (200, 503, or hold until released; at one
path, any status, body and headers, or never).

Each request is recorded with when it started and when it ended from the receiver's side: its
answer, or the sender hanging up (a killed dispatcher), so a test can tell whether two
requests for the same webhook-id were ever in flight at once."""

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    webhook_id: str
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    started: float
    ended: float | None = None
    status: int | None = None
    hung_up: bool = False


@dataclass
class Answer:
    """What the receiver answers at one path instead of `Receiver.answer` (a request whose
    signature does not verify still gets a 400)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    never: bool = False
    """Hold every request, as `Receiver.hold` does one, until the sender hangs up (or is
    killed) or the receiver stops."""


@dataclass
class Receiver:
    secrets: dict[str, list[str]]
    """Path -> the secrets a request there may be signed with (any one verifies)."""
    answer: int = 200
    hold: int = 0
    """How many of the next requests wait for `release` (or for the sender to hang up)."""
    delay_s: float = 0.0
    answers: dict[str, Answer] = field(default_factory=dict)
    """Path -> what is answered there instead of the defaults above."""
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- what the tests read

    def accepted(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r for r in self.requests if r.status == 200 and (path is None or r.path == path)
            ]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def in_flight(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.ended is None]

    def overlaps(self) -> list[tuple[Received, Received]]:
        """Pairs of requests for the same (path, webhook-id) whose lifetimes intersect."""
        found = []
        by_key: dict[tuple[str, str], list[Received]] = {}
        for request in self.all():
            by_key.setdefault((request.path, request.webhook_id), []).append(request)
        for requests in by_key.values():
            requests.sort(key=lambda r: r.started)
            for earlier, later in zip(requests, requests[1:], strict=False):
                if earlier.ended is None or later.started < earlier.ended:
                    found.append((earlier, later))
        return found

    def release(self) -> None:
        self._released.set()

    # -- serving

    def start(self) -> "Receiver":
        """Listen (again, on the same port once it had one)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def run() -> None:
            async def serve() -> None:
                task = asyncio.create_task(self._server.serve(sockets=[sock]))
                while not self._server.started:
                    await asyncio.sleep(0.01)
                started.set()
                await task

            asyncio.run(serve())

        self._thread = threading.Thread(target=run, name=f"receiver-{self.port}", daemon=True)
        self._thread.start()
        assert started.wait(10), "the receiver did not start"
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def reserve_port(self) -> "Receiver":
        """A port for it without listening yet: senders get connection refused until start()."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        return self

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.url.path
        record = Received(
            path=path,
            webhook_id=headers.get("webhook-id", ""),
            headers=headers,
            body=_json(raw),
            verified=_verifies(raw, headers, self.secrets.get(path, [])),
            started=time.monotonic(),
        )
        special = self.answers.get(path)
        never = special is not None and special.never
        with self._lock:
            self.requests.append(record)
            held = never or self.hold > 0
            if held and not never:
                self.hold -= 1
        if held:
            while not self._released.is_set():
                if await request.is_disconnected():
                    record.ended, record.hung_up = time.monotonic(), True
                    return Response(status_code=499)
                await asyncio.sleep(0.01)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if special is None:
            special = Answer(self.answer)
        status = special.status if record.verified else 400
        record.status, record.ended = status, time.monotonic()
        return Response(special.body, status_code=status, headers=special.headers)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _verifies(raw: bytes, headers: dict[str, str], secrets: list[str]) -> bool:
    for secret in secrets:
        try:
            Webhook(secret).verify(raw, headers)
            return True
        except Exception:
            continue
    return False
