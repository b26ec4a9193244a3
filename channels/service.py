"""`python -m channels serve`: every enabled channel binding, until SIGTERM.

The bindings are read from `channel_bindings` every CHANNELS_RELOAD_S: a new or changed one is
(re)started, a disabled or deleted one stopped. Each binding's state is written to
`channel_status` (`running`, or `error` with why, e.g. a token env var that is unset or not
allowed by the egress policy) so the console can show it. One HTTP server (CHANNELS_PORT) takes
what comes from outside: each kind's routes (Telegram webhooks, the HTTP chat API) and
`/healthz`. The service can also run inside another event loop (`async with
ChannelService(...)`), which the tests and benches do.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from agent_configs.channels import CHANNEL_STATUS, ChannelBinding, ChannelKind, list_bindings
from agent_configs.database import open_database
from agent_configs.egress import EgressPolicy
from agent_configs.telemetry import setup_tracing
from channels import kinds  # noqa: F401  (registers the channel kinds)
from channels.hub import Hub
from channels.problems import Problem, database_unavailable, problem_response
from channels.registry import ChannelContext, ChannelRunner, channel_type, channel_types
from channels.room import LiveKitAccess
from channels.settings import ChannelSettings

logger = logging.getLogger("switchboard.channels")

SERVED_ELSEWHERE = frozenset({ChannelKind.WIDGET})
"""The widget's browser joins its rooms itself with a token the admin API mints: nothing of it
runs here."""
SHUTDOWN_GRACE_S = 10
"""How long a stopping service lets HTTP requests in flight finish (a streamed reply, a
webhook being answered) before it closes them: a client holding its connection open would
otherwise keep it from stopping until SIGKILL, and its records from being flushed."""
STARTED = "channels service started"
"""Logged once the HTTP side listens and the bindings are loaded (devstack waits for it)."""


class ChannelService:
    def __init__(
        self,
        settings: ChannelSettings,
        database: AsyncDatabase | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._database = database if database is not None else open_database(settings)
        self._hub = Hub(
            LiveKitAccess(
                settings.livekit_url or "ws://127.0.0.1:7880",
                settings.livekit_api_key,
                settings.livekit_api_secret.get_secret_value(),
                settings.agent_name,
            ),
            self._database,
            spool_dir=settings.channels_spool_dir,
            reply_timeout_s=settings.channels_reply_timeout_s,
            join_timeout_s=settings.channels_join_timeout_s,
        )
        self._context = ChannelContext(self._database, egress or settings.egress)
        self._runners: dict[str, tuple[ChannelBinding, ChannelRunner]] = {}
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.port: int | None = None
        self._stopping = False
        self.app = self._make_app()

    # -- what the routes read ----------------------------------------------------------

    @property
    def hub(self) -> Hub:
        return self._hub

    @property
    def context(self) -> ChannelContext:
        return self._context

    def get(self, binding_id: str) -> tuple[ChannelBinding, ChannelRunner] | None:
        return self._runners.get(binding_id)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def url(self) -> str:
        return f"http://{self._settings.channels_host}:{self.port}"

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="Switchboard channels", docs_url=None, redoc_url=None)
        app.add_exception_handler(Problem, problem_response)
        app.add_exception_handler(PyMongoError, database_unavailable)

        @app.get("/healthz")
        async def healthz() -> dict[str, Any]:
            return {
                "status": "ok",
                "bindings": sorted(self._runners),
                "open_conversations": self._hub.open_conversations(),
            }

        for kind in channel_types():
            if kind.routes is not None:
                app.include_router(kind.routes(self))
        return app

    # -- bindings ----------------------------------------------------------------------

    async def reload(self) -> None:
        """Starts what is new or changed, stops what is gone or disabled."""
        wanted = {
            b.binding_id: b
            for b in await list_bindings(self._database)
            if b.enabled and b.kind not in SERVED_ELSEWHERE
        }
        for binding_id in [b for b in self._runners if b not in wanted]:
            await self._stop(binding_id)
            await self._status(binding_id, "stopped")
        for binding_id, binding in wanted.items():
            running = self._runners.get(binding_id)
            if running is not None and running[0] == binding:
                continue
            if running is not None:
                await self._stop(binding_id)
            await self._start(binding)

    async def _start(self, binding: ChannelBinding) -> None:
        kind = channel_type(binding.kind)
        if kind is None:
            await self._status(binding.binding_id, "error", f"no channel kind {binding.kind}")
            return
        runner = kind.factory(binding, self._hub, self._context)
        try:
            await runner.start()
        except Exception as exc:  # a bad token, an unreachable broker: the others run on
            logger.warning("channel %s could not start: %s", binding.binding_id, exc)
            await self._status(binding.binding_id, "error", str(exc)[:500])
            with contextlib.suppress(Exception):
                await runner.stop()
            return
        self._runners[binding.binding_id] = (binding, runner)
        await self._status(binding.binding_id, "running")

    async def _stop(self, binding_id: str) -> None:
        running = self._runners.pop(binding_id, None)
        if running is not None:
            try:
                await running[1].stop()
            except Exception:
                logger.exception("channel %s did not stop cleanly", binding_id)

    async def _status(self, binding_id: str, state: str, error: str | None = None) -> None:
        with contextlib.suppress(Exception):  # a status is for the console: never fatal
            await self._database[CHANNEL_STATUS].replace_one(
                {"_id": binding_id},
                {"state": state, "error": error, "at": datetime.now(UTC)},
                upsert=True,
            )

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.channels_reload_s)
            try:
                await self.reload()
            except Exception as exc:  # the database away: keep what runs, look again
                logger.warning("could not reload the channel bindings: %s", exc)

    # -- life ---------------------------------------------------------------------------

    async def __aenter__(self) -> "ChannelService":
        await self._hub.start()
        await self.reload()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._settings.channels_host, self._settings.channels_port))
        self.port = int(listener.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._tasks = [
            asyncio.create_task(self._server.serve(sockets=[listener]), name="channels.http"),
            asyncio.create_task(self._reload_forever(), name="channels.reload"),
        ]
        while not self._server.started:
            if self._tasks[0].done():
                self._tasks[0].result()  # the server failed to start: say why
            await asyncio.sleep(0.01)
        logger.info("%s (http on %s)", STARTED, self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stops taking messages first (pollers and consumers, all at once), then lets the
        HTTP requests in flight finish (at most SHUTDOWN_GRACE_S), then closes the open
        conversations and flushes the records."""
        self._stopping = True
        self._tasks[-1].cancel()
        await asyncio.gather(*(self._stop(b) for b in list(self._runners)))
        if self._server is not None:
            self._server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._hub.aclose()

    async def run(self) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        try:
            async with self:
                await stopping.wait()
                logger.info("stopping: conversations close, records are flushed")
        finally:
            await self._database.client.close()


class _AgentSessionStreams(logging.Filter):
    """Drops livekit's INFO line for each agent-session byte stream a channel ignores (the
    agent sends one per turn, `lk.agent.session`: nothing a channel reads), which was most of
    the service's log; the stream is disposed of all the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg == "ignoring byte stream with topic '%s', no callback attached"
            and record.args == ("lk.agent.session",)
        )


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_AgentSessionStreams())
    if sys.argv[1:] not in ([], ["serve"]):
        sys.exit("usage: python -m channels serve")
    try:
        settings = ChannelSettings()
    except ValidationError as exc:
        sys.exit(f"error: invalid settings:\n{exc}")
    if not settings.mongo_uri:
        sys.exit("error: MONGO_URI is not set: start the local stack with `make dev` or set it")
    settings.check_safe_for_production()
    setup_tracing("switchboard-channels")
    asyncio.run(ChannelService(settings).run())
