"""A short read cache for GET /agents/{id}: the config and its JSON, kept for a second.

Why: on FerretDB (SQLite) one `find_one` of a config costs ~2.5 ms of database CPU, because
the documents are large and every stored one is decoded to match `agent_id`; that alone caps
reads at a few hundred per second per core. Served from memory, a read costs microseconds.

Why it is safe: every write goes to the store with If-Match and the store checks the version
there, so a read that is up to `ADMIN_API_CONFIG_CACHE_TTL_S` (default 1 s) stale can at worst
lead to a 412, never to a lost update. A write through this process replaces its entry at
once (read-your-writes on one replica); a 412 drops it, so the re-read is fresh. Other
replicas see a change within the TTL. 0 turns the cache off. The worker does not use this:
it reads through agent_configs.cache.ConfigCache, which checks the version on every session.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_configs.models import AgentConfig
from agent_configs.store import ConfigStore


@dataclass(frozen=True)
class CachedConfig:
    config: AgentConfig
    body: bytes
    read_at: float


class ConfigReads:
    def __init__(
        self,
        store: ConfigStore,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, CachedConfig] = {}

    async def get(self, agent_id: str) -> CachedConfig:
        """Raises AgentNotFound / DatabaseUnavailable like `ConfigStore.get`."""
        cached = self._entries.get(agent_id)
        if cached is not None and self._clock() - cached.read_at < self._ttl_s:
            return cached
        return self.remember(await self._store.get(agent_id))

    def remember(self, config: AgentConfig) -> CachedConfig:
        """Keep what was just read or written (the store's answer is the current version)."""
        cached = CachedConfig(config, config.model_dump_json().encode(), self._clock())
        if self._ttl_s > 0:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[config.agent_id] = cached
        return cached

    def forget(self, agent_id: str) -> None:
        self._entries.pop(agent_id, None)

    @property
    def held(self) -> int:
        """Entries in memory: only configs that exist (a miss raises and is not kept), at most
        `max_entries`, so agent ids from token metadata cannot grow it."""
        return len(self._entries)


class CachedConfigSource:
    """`ConfigSource` (routing availability) over the read cache: for choosing a token's pool.

    The worker routes the room again when it arrives, with version-checked configs, so a pool
    chosen on a config up to the cache TTL old is at worst a pool whose worker picks another
    of its types; /routing/resolve does not use this and always reads current versions.
    """

    def __init__(self, reads: ConfigReads) -> None:
        self._reads = reads

    async def get(self, agent_id: str) -> AgentConfig:
        return (await self._reads.get(agent_id)).config
