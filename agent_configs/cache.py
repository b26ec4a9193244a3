"""A config cache that is never stale: each read checks the version, only changes are fetched.

The worker reads an agent type's config for every room. Parsing and validating a full config
costs more than asking for its version number, so a read is one tiny query; an admin edit
(a new version) is picked up by the very next session, with no restart and no TTL to wait out.
"""

from agent_configs.models import AgentConfig
from agent_configs.store import ConfigStore


class ConfigCache:
    def __init__(self, store: ConfigStore) -> None:
        self._store = store
        self._configs: dict[str, AgentConfig] = {}

    async def get(self, agent_id: str) -> AgentConfig:
        """Raises AgentNotFound / DatabaseUnavailable like `ConfigStore.get`."""
        version = await self._store.current_version(agent_id)
        cached = self._configs.get(agent_id)
        if cached is not None and cached.version == version:
            return cached
        config = await self._store.get(agent_id)
        self._configs[agent_id] = config
        return config
