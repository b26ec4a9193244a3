"""Shared test helpers for routing: seeded agent types and a fixed clock."""

from datetime import datetime

from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import AgentConfig
from agent_configs.store import ConfigStore

BUILTIN_AGENT_IDS = (
    "onboarding-agent-v1",
    "pte-interview-agent-v1",
    "sales-agent-v1",
    "support-agent-v1",
)


def builtin_configs() -> list[AgentConfig]:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert errors == []
    return configs


async def seed_builtin_agents(store: ConfigStore) -> None:
    for config in builtin_configs():
        await store.create(config)


def fixed_clock(moment: datetime):
    return lambda: moment
