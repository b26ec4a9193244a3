"""Errors the config store raises: each says what happened in words an operator can act on."""

from dataclasses import dataclass


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


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a definition: the dotted field path to blame and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigRefused(ConfigStoreError):
    """A definition write (create, update, rollback) refused for what the model alone cannot
    tell: the egress policy, transfer targets, installed plugins, the tool list as a whole.
    Nothing was written; `problems` names every field to fix, not just the first."""

    def __init__(self, agent_id: str, problems: list[ConfigProblem]) -> None:
        self.agent_id = agent_id
        self.problems = problems
        super().__init__(f"agent '{agent_id}' refused: " + "; ".join(str(p) for p in problems))
