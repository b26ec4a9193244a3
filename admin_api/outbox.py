"""The admin API's events out: one CloudEvent in `outbox` per committed lifecycle or routing write.

The audit trail (`events`, admin_api/events.py) says who did what, for the console; the
outbox is what webhooks receive (agent_configs/cloudevents.py). Both are written after the
change has been committed: FerretDB has no transactions, so "change and event together" is
not on offer. The audit event may be lost when the database goes away in between (it is
logged); the outbox event may not: it goes through a NoLossWriter (queue, retries with
backoff while MongoDB is away, dead letters, spooled to `ADMIN_API_SPOOL_DIR` at shutdown and
replayed at the next start), so a request never waits on it and a brief outage loses nothing.
Every `ADOPT_EVERY_S` a running API also replays what other API processes left spooled when
they went away (a rollout's old pods, a scale-down): on Kubernetes the spool is a volume the
replicas share, and a process's spool is adopted once it is gone (agent_configs/spool.py).

Nothing secret goes in: the events name the agent type, its version and status and the API
key's name (`actor`), never the key, a config's env values or a routing strategy's params.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import (
    OUTBOX,
    ROUTING_ORDERING_KEY,
    EventType,
    activated_data,
    admin_event,
    agent_data,
    ensure_outbox_indexes,
    gate_overridden_data,
    routing_data,
)
from agent_configs.database import database_errors
from agent_configs.models import AgentConfig
from agent_configs.routing.rules import RoutingRules
from agent_configs.writer import NoLossWriter, Record, WriterObserver

logger = logging.getLogger("switchboard.admin_api.outbox")

CLOSE_DEADLINE_S = 5.0
"""At shutdown, how long the writer may keep trying before it spools what is left."""
ADOPT_EVERY_S = 60.0
"""How often a running API replays the spools of API processes that are gone. Cheap when there
are none (a directory listing); their events reach webhooks up to this much later."""


class AdminOutbox:
    """`agent_changed` / `routing_updated` return at once; `close()` flushes or spools."""

    def __init__(
        self, database: AsyncDatabase, spool_dir: Path, observer: WriterObserver | None = None
    ) -> None:
        self._database = database
        self._writer = NoLossWriter(database, spool_dir, collections={OUTBOX}, observer=observer)

    @property
    def backlog(self) -> int:
        """Events queued, not yet in MongoDB."""
        return self._writer.backlog

    async def prepare(self) -> None:
        """Indexes, then the events an earlier run spooled (the database answers by now)."""
        with database_errors():
            await ensure_outbox_indexes(self._database)
        replayed = await self._writer.replay()
        if replayed:
            logger.info("replayed %d spooled outbox events", replayed)

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one outbox document (`new_event`), e.g. a `webhook.test`."""
        fields = {key: value for key, value in event.items() if key != "_id"}
        self._writer.submit(Record(OUTBOX, event["_id"], fields))

    def agent_changed(
        self,
        kind: EventType,
        saved: AgentConfig,
        actor: str,
        *,
        restored_version: int | None = None,
    ) -> None:
        """After an agent type's write committed: `saved` is what it produced."""
        data = agent_data(
            agent_id=saved.agent_id,
            name=saved.name,
            version=saved.version,
            status=str(saved.status),
            actor=actor,
            restored_version=restored_version,
        )
        self.emit(admin_event(kind, saved.agent_id, data, agent_id=saved.agent_id))

    def agent_activated(
        self, saved: AgentConfig, actor: str, *, run_id: str | None, activated_version: int
    ) -> None:
        """After a filed version was made current (`saved`, see `activated_data`)."""
        data = activated_data(
            agent_id=saved.agent_id,
            name=saved.name,
            version=saved.version,
            status=str(saved.status),
            actor=actor,
            run_id=run_id,
            activated_version=activated_version,
        )
        self.emit(
            admin_event(EventType.AGENT_ACTIVATED, saved.agent_id, data, agent_id=saved.agent_id)
        )

    def gate_overridden(
        self, agent_id: str, version: int, actor: str, *, reason: str, action: str
    ) -> None:
        """After a release-gated change that an admin's override let through committed."""
        data = gate_overridden_data(
            agent_id=agent_id, version=version, reason=reason, actor=actor, action=action
        )
        self.emit(admin_event(EventType.AGENT_GATE_OVERRIDDEN, agent_id, data, agent_id=agent_id))

    def routing_updated(self, saved: RoutingRules, actor: str) -> None:
        """After the routing rules were saved: the version and the enabled strategies."""
        strategies = [entry.strategy for entry in saved.chain if entry.enabled]
        data = routing_data(rules_version=saved.version, strategies=strategies, actor=actor)
        self.emit(admin_event(EventType.ROUTING_UPDATED, ROUTING_ORDERING_KEY, data))

    async def adopt_forever(self, every_s: float = ADOPT_EVERY_S) -> None:
        """Replay, every `every_s`, the spools other processes left (the database away, a
        replay stops at once and the next one tries again). Runs until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            try:
                replayed = await self._writer.replay()
            except Exception as exc:  # the next round tries again
                logger.warning("spooled outbox events not replayed: %s", exc)
                continue
            if replayed:
                logger.info("replayed %d outbox events spooled by processes now gone", replayed)

    async def close(self) -> None:
        spooled = await self._writer.close(deadline_s=CLOSE_DEADLINE_S)
        if spooled is not None:
            logger.error("outbox events spooled to %s: the next start writes them", spooled)
