"""Small valid configs for tests, built from the shipped defaults so they stay realistic."""

from typing import Any

from agent_configs.files import DEFAULTS_DIR, load_config_file
from agent_configs.models import AgentConfig


def support_definition(**changes: Any) -> dict[str, Any]:
    """The built-in support agent as a plain dict, with `changes` applied on top."""
    loaded = load_config_file(DEFAULTS_DIR / "support.yaml")
    assert isinstance(loaded, AgentConfig), loaded
    return loaded.definition() | changes


def support_config(**changes: Any) -> AgentConfig:
    return AgentConfig.model_validate(support_definition(**changes))
