"""GET /agents/{id} from the catalog, with the JSON it is served as.

Why from memory: on FerretDB (SQLite) one `find_one` of a config costs ~2.5 ms of database
CPU, because the documents are large and every stored one is decoded to match `agent_id`;
that alone caps reads at a few hundred per second per core. The catalog
(agent_configs/catalog.py) reads the change stamp at most every ADMIN_API_CONFIG_CACHE_TTL_S
here and checks a config again only when the stamp moved, and the JSON of each version is
encoded once.

Why it is safe: every write goes to the store with If-Match and the store checks the version
there, so a read that is up to that interval stale can at worst lead to a 412, never to a lost
update. A write through this process replaces its entry at once (read-your-writes on one
replica); a 412 drops it, so the re-read is fresh. Other replicas see a change within the
interval.
"""

from dataclasses import dataclass

from agent_configs.catalog import Catalog
from agent_configs.models import AgentConfig


@dataclass(frozen=True)
class CachedConfig:
    config: AgentConfig
    body: bytes


class ConfigReads:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._bodies: dict[str, CachedConfig] = {}  # the encoded JSON of the catalog's configs

    async def get(self, agent_id: str) -> CachedConfig:
        """Raises AgentNotFound / DatabaseUnavailable like `ConfigStore.get`."""
        await self._catalog.refresh()
        return self._encoded(await self._catalog.get(agent_id))

    def remember(self, config: AgentConfig) -> CachedConfig:
        """Keep what was just written (the store's answer is the current version)."""
        self._catalog.remember(config)
        return self._encoded(config)

    def forget(self, agent_id: str) -> None:
        self._catalog.forget(agent_id)
        self._bodies.pop(agent_id, None)

    def _encoded(self, config: AgentConfig) -> CachedConfig:
        cached = self._bodies.get(config.agent_id)
        if cached is None or cached.config is not config:
            cached = CachedConfig(config, config.model_dump_json().encode())
            self._bodies[config.agent_id] = cached
        return cached

    @property
    def held(self) -> int:
        """Encoded configs in memory: only configs that exist (a miss raises and is not kept),
        so agent ids from token metadata cannot grow it."""
        return len(self._bodies)
