"""Errors of the routing package, each worded so an operator knows what to change."""

from dataclasses import dataclass


class RoutingError(Exception):
    """Base class for everything the routing package raises on purpose."""


class UnknownStrategy(RoutingError):
    def __init__(self, name: str, known: list[str], group: str) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown routing strategy '{name}'; known: {', '.join(known)} "
            f"(custom strategies are installed through the '{group}' entry-point group)"
        )


class StrategyLoadError(RoutingError):
    """A custom strategy is installed but cannot be used: import failure or wrong shape."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"routing strategy plugin '{name}' is broken: {detail}")


@dataclass(frozen=True)
class RulesProblem:
    """One thing wrong with a rules document. `index` is the position in `chain`."""

    field: str
    message: str
    index: int | None = None
    strategy: str | None = None

    def __str__(self) -> str:
        where = "" if self.index is None else f"chain[{self.index}]"
        if self.strategy:
            where += f" ({self.strategy})"
        path = f"{where} {self.field}".strip()
        return f"{path}: {self.message}"


class InvalidRoutingRules(RoutingError):
    def __init__(self, problems: list[RulesProblem]) -> None:
        self.problems = problems
        super().__init__("invalid routing rules: " + "; ".join(str(p) for p in problems))


class RulesVersionConflict(RoutingError):
    """A save based on a rules version that is no longer current."""

    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(
            f"routing rules are at version {current}, not {expected}: they were changed since "
            "you read them; re-read them and apply your change again"
        )
