"""The dispatcher process: fan-out, delivery and the gauges as three loops, until SIGTERM.

SIGTERM (or Ctrl-C): stop taking deliveries, let those in flight finish within
DISPATCHER_SHUTDOWN_GRACE_S, release every lease still held (another replica takes them at
once), then exit. A database that is away only pauses the loops; they carry on when it returns.
"""

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from agent_configs.cloudevents import DELIVERIES, OUTBOX, ensure_outbox_indexes
from agent_configs.database import bson_now, open_database
from dispatcher import metrics
from dispatcher.delivery import Deliverer
from dispatcher.fanout import fan_out_once
from dispatcher.health import Health, serve
from dispatcher.leases import PairLeases
from dispatcher.message import USER_AGENT
from dispatcher.settings import DispatcherSettings

logger = logging.getLogger("switchboard.dispatcher")

DATABASE_RETRY_MAX_S = 10.0

INDEXES: list[tuple[str, list[tuple[str, int]]]] = [
    (DELIVERIES, [("status", 1), ("next_attempt_at", 1)]),
    (DELIVERIES, [("subscription_id", 1), ("ordering_key", 1), ("status", 1), ("seq", 1)]),
    (DELIVERIES, [("lease_owner", 1)]),
    (DELIVERIES, [("subscription_id", 1), ("created_at", -1)]),  # the admin API's deliveries lists
]
"""What the loops query: due deliveries, a pair's earlier/later ones, this process's leases
(the outbox's own indexes are `ensure_outbox_indexes`, shared with its writers)."""


def owner_id() -> str:
    """Unique per process start, readable in the deliveries list: host, pid, random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def ensure_indexes(database: AsyncDatabase) -> None:
    """The unique index on leases is what makes them exclusive: it is not optional."""
    await ensure_outbox_indexes(database)
    await PairLeases(database, "", 0).ensure_indexes()
    for collection, keys in INDEXES:
        try:
            await database[collection].create_index(keys)
        except OperationFailure as exc:  # another process made an equivalent one: fine
            logger.warning("index %s on %s not created: %s", keys, collection, exc)


class Dispatcher:
    def __init__(self, settings: DispatcherSettings, database: AsyncDatabase | None = None) -> None:
        self._settings = settings
        self._db = database if database is not None else open_database(settings)
        self.owner = owner_id()
        stale_after = max(
            60.0, 3 * (settings.dispatcher_timeout_s + settings.dispatcher_poll_interval_s)
        )
        self.health = Health(stale_after)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self.health.stopping = True
        self._stopping.set()

    async def run(self) -> None:
        settings = self._settings
        http = serve(
            self.health, settings.dispatcher_metrics_host, settings.dispatcher_metrics_port
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc credentials from the environment go to receivers
            headers={"user-agent": USER_AGENT},
            limits=httpx.Limits(max_connections=settings.dispatcher_max_in_flight),
        )
        deliverer = Deliverer(self._db, settings, settings.egress, self.owner, client)
        logger.info(
            "dispatcher %s started (metrics on %s:%d)",
            self.owner,
            settings.dispatcher_metrics_host,
            http.server_address[1],
        )
        try:
            while await self._guarded(lambda: ensure_indexes(self._db), once=True) is None:
                if self._stopping.is_set():
                    return
                await asyncio.sleep(
                    1.0
                )  # no leases without their unique index: wait for the database
            loops = [
                asyncio.create_task(
                    self._forever(lambda: self._fan_out(deliverer)), name="fan-out"
                ),
                asyncio.create_task(self._forever(lambda: self._take(deliverer)), name="delivery"),
                asyncio.create_task(self._forever(self._refresh_gauges), name="gauges"),
            ]
            await self._stopping.wait()
            logger.info("stopping: no new deliveries taken")
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._guarded(
                lambda: deliverer.finish(settings.dispatcher_shutdown_grace_s), once=True
            )
        finally:
            await client.aclose()
            http.shutdown()
            await self._db.client.close()
        logger.info("dispatcher %s stopped", self.owner)

    async def _fan_out(self, deliverer: Deliverer) -> float:
        made = await fan_out_once(self._db, self._settings.dispatcher_batch)
        if made:
            deliverer.wake.set()
        return 0.0 if made else self._settings.dispatcher_poll_interval_s

    async def _take(self, deliverer: Deliverer) -> float:
        deliverer.wake.clear()
        await deliverer.take_due()
        try:  # a finished delivery or a fan-out wakes us before the poll interval
            await asyncio.wait_for(deliverer.wake.wait(), self._settings.dispatcher_poll_interval_s)
        except TimeoutError:
            pass
        return 0.0

    async def _refresh_gauges(self) -> float:
        pending = await self._db[DELIVERIES].count_documents({"status": "pending"})
        unfanned = await self._db[OUTBOX].count_documents({"fanned_out": False})
        metrics.PENDING.set(pending + unfanned)
        oldest: list[datetime] = []
        delivery = await self._db[DELIVERIES].find_one(
            {"status": "pending"},
            {"event_created_at": 1, "created_at": 1},
            sort=[("created_at", 1)],
        )
        if delivery is not None:
            oldest.append(delivery.get("event_created_at") or delivery["created_at"])
        event = await self._db[OUTBOX].find_one(
            {"fanned_out": False}, {"created_at": 1}, sort=[("created_at", 1)]
        )
        if event is not None and event.get("created_at") is not None:
            oldest.append(event["created_at"])
        age = (bson_now() - min(oldest)).total_seconds() if oldest else 0.0
        metrics.OLDEST_PENDING_AGE.set(max(age, 0.0))
        return self._settings.dispatcher_stats_interval_s

    async def _forever(self, step: Callable[[], Awaitable[float]]) -> None:
        """Run `step` until cancelled; it returns how long to wait before the next run. A
        database error waits and tries again (doubling up to 10 s) instead of ending the loop."""
        backoff = self._settings.dispatcher_poll_interval_s
        while True:
            wait = await self._guarded(step)
            self.health.loop_beat = time.monotonic()
            if wait is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, DATABASE_RETRY_MAX_S)
                continue
            backoff = self._settings.dispatcher_poll_interval_s
            if wait:
                await asyncio.sleep(wait)

    async def _guarded(
        self, step: Callable[[], Awaitable[float | None]], *, once: bool = False
    ) -> float | None:
        try:
            result = await step()
        except PyMongoError as exc:
            logger.warning(
                "database unavailable (%s)%s", str(exc).split(",")[0], "" if once else "; retrying"
            )
            self.health.database_ok_at = None
            return None
        self.health.database_ok_at = time.monotonic()
        return 0.0 if result is None else result
