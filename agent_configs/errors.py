"""Errors the config store raises: each says what happened in words an operator can act on."""


class ConfigStoreError(Exception):
    """Base class for everything `ConfigStore` raises on purpose."""


class AgentNotFound(ConfigStoreError):
    def __init__(self, agent_id: str, version: int | None = None) -> None:
        self.agent_id = agent_id
        self.version = version
        what = f"agent '{agent_id}'" + (f" version {version}" if version is not None else "")
        super().__init__(f"{what} does not exist")


class AgentAlreadyExists(ConfigStoreError):
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent '{agent_id}' already exists; update it with its current version")


class VersionConflict(ConfigStoreError):
    """A write based on a version that is no longer current: someone else saved first."""

    def __init__(self, agent_id: str, expected: int, current: int) -> None:
        self.agent_id = agent_id
        self.expected = expected
        self.current = current
        super().__init__(
            f"agent '{agent_id}' is at version {current}, not {expected}: "
            "it was changed since you read it; re-read it and apply your change again"
        )


class DatabaseUnavailable(ConfigStoreError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"database unreachable: {detail}")
