"""A config cache that is never stale, and costs one round trip per room when warm.

The worker reads agent type configs for every room. With a `ChangeStamp`, `refresh()` (once
per room) reads the stamp that every config and rules write bumps: while it is unchanged,
every config already checked is served from memory. When it changed, each config is checked
again by its version on next use (a tiny query), and only changed ones are fetched. An admin
edit is therefore picked up by the very next session, with no restart and no TTL to wait out.

`max_age_s` is a safety net for writes that bypass the stores (a hand edit in mongosh that
also bumps `version`): after it, configs are re-checked even if the stamp did not move.
Without a stamp, every `get` checks the version.

Unknown agent ids are remembered too (a room that names a missing type costs no query while
the stamp holds), but only the `max_unknown` most recently asked: the ids come from room
metadata, which anyone who can start a room chooses, and an unbounded map of them grew to
32 MB after 100k distinct unknown ids. Known ids need no bound: they are the stored configs.
Without a stamp nothing reads the remembered answers, so misses are not kept at all.

With a `CatalogSnapshot`, every config fetched is also written there, and when the database
is unreachable the cache serves the snapshot's configs instead (`offline`): a room that
arrives during an outage is served from the last-known good configs rather than crashing
on the change-stamp read. Offline, `get` reads no database at all: each read would cost the
full MONGO_TIMEOUT_MS before failing again.
"""

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from agent_configs.changes import ChangeStamp
from agent_configs.errors import AgentNotFound, DatabaseUnavailable
from agent_configs.models import AgentConfig
from agent_configs.snapshot import CatalogSnapshot
from agent_configs.store import ConfigStore

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 30.0
DEFAULT_MAX_UNKNOWN = 1024


class ConfigCache:
    def __init__(
        self,
        store: ConfigStore,
        stamp: ChangeStamp | None = None,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_unknown: int = DEFAULT_MAX_UNKNOWN,
        clock: Callable[[], float] = time.monotonic,
        snapshot: CatalogSnapshot | None = None,
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self.offline = False  # serving the snapshot: the database was unreachable at refresh
        self._stamp = stamp
        self._max_age_s = max_age_s
        self._max_unknown = max_unknown
        self._clock = clock
        self._configs: dict[str, AgentConfig] = {}
        self._checked: dict[str, AgentConfig] = {}  # found since the last stamp
        self._unknown: OrderedDict[str, None] = OrderedDict()  # not found since the last stamp; LRU
        self._seen_stamp: str | None = None
        self._refreshed_at = float("-inf")

    async def refresh(self) -> bool:
        """Read the change stamp; True when anything was written since the last refresh."""
        if self._stamp is None:
            return True
        try:
            stamp = await self._stamp.read()
        except DatabaseUnavailable:
            if self._snapshot is None or not self._snapshot.seen_database:
                raise
            if not self.offline:
                logger.warning("database unreachable: serving the last-known good configs")
            self.offline = True
            self._checked.clear()
            self._unknown.clear()
            return True
        self.offline = False
        now = self._clock()
        changed = stamp != self._seen_stamp or now - self._refreshed_at >= self._max_age_s
        if changed:
            self._checked.clear()
            self._unknown.clear()
            self._seen_stamp = stamp
            self._refreshed_at = now
        return changed

    async def get(self, agent_id: str) -> AgentConfig:
        """Raises AgentNotFound / DatabaseUnavailable like `ConfigStore.get`; offline, or when
        the database fails now, a config found in the snapshot is returned instead."""
        if self.offline:
            return self._from_snapshot(agent_id)
        if self._stamp is not None:
            checked = self._checked.get(agent_id)
            if checked is not None:
                return checked
            if agent_id in self._unknown:
                self._unknown.move_to_end(agent_id)
                raise AgentNotFound(agent_id)
        try:
            config = await self._current(agent_id)
        except AgentNotFound:
            self._remember_unknown(agent_id)
            raise
        except DatabaseUnavailable:
            if self._snapshot is None or self._snapshot.config(agent_id) is None:
                raise
            logger.warning("database unreachable: %s served from the last-known good config", agent_id)
            return self._from_snapshot(agent_id)
        if self._stamp is not None:
            self._unknown.pop(agent_id, None)
            self._checked[agent_id] = config
        return config

    @property
    def held(self) -> int:
        """How many agent ids this cache holds anything for (configs, found, unknown)."""
        return len(self._configs.keys() | self._checked.keys() | self._unknown.keys())

    def _remember_unknown(self, agent_id: str) -> None:
        self._configs.pop(agent_id, None)  # deleted by hand: do not keep its old config either
        if self._stamp is None or self._max_unknown <= 0:
            return
        self._unknown[agent_id] = None
        self._unknown.move_to_end(agent_id)
        while len(self._unknown) > self._max_unknown:
            self._unknown.popitem(last=False)

    async def _current(self, agent_id: str) -> AgentConfig:
        version = await self._store.current_version(agent_id)
        cached = self._configs.get(agent_id)
        if cached is not None and cached.version == version:
            return cached
        config = await self._store.get(agent_id)
        self._configs[agent_id] = config
        if self._snapshot is not None:
            self._snapshot.save_config(config)
        return config

    def _from_snapshot(self, agent_id: str) -> AgentConfig:
        """A type this worker never read is unknown offline: the chain moves on."""
        config = self._configs.get(agent_id) or (self._snapshot.config(agent_id) if self._snapshot else None)
        if config is None:
            raise AgentNotFound(agent_id)
        return config
