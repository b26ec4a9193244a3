"""Strategies by name: the built-ins, plus custom ones from the `switchboard.routing` entry points.

A package adds a strategy by declaring, in its own pyproject.toml:

    [project.entry-points."switchboard.routing"]
    vip_desk = "my_package.routing:VipDeskStrategy"

and the rules can then say `{"strategy": "vip_desk", "params": {...}}`. Plugins are loaded
once, when the registry is built; one that fails to import or does not have the shape of a
`RoutingStrategy` is recorded with its error and only the rules that name it are affected.
"""

from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from agent_configs.routing.errors import StrategyLoadError, UnknownStrategy
from agent_configs.routing.strategies import BUILTIN_STRATEGIES
from agent_configs.routing.strategy import RoutingStrategy

ENTRY_POINT_GROUP = "switchboard.routing"


class StrategyRegistry:
    def __init__(
        self,
        strategies: Iterable[type[Any]] = BUILTIN_STRATEGIES,
        *,
        broken: Mapping[str, str] | None = None,
        group: str = ENTRY_POINT_GROUP,
    ) -> None:
        self._strategies: dict[str, type[RoutingStrategy]] = {s.name: s for s in strategies}
        self._broken = dict(broken or {})
        self.group = group

    @classmethod
    def with_plugins(cls, group: str = ENTRY_POINT_GROUP) -> "StrategyRegistry":
        """The built-ins plus every strategy installed under the entry-point `group`."""
        builtins: dict[str, type[Any]] = {s.name: s for s in BUILTIN_STRATEGIES}
        plugins: dict[str, type[Any]] = {}
        broken: dict[str, str] = {}
        found = list(entry_points(group=group))
        names = [point.name for point in found]
        for point in found:
            if point.name in builtins:
                broken[point.name] = _clash(point, builtins[point.name])
            elif names.count(point.name) > 1:
                broken[point.name] = f"{names.count(point.name)} installed packages provide it"
            else:
                try:
                    plugins[point.name] = load_plugin(point)
                except StrategyLoadError as exc:
                    broken[point.name] = exc.detail
        strategies = [*builtins.values(), *plugins.values()]
        return cls(strategies, broken=broken, group=group)

    @property
    def plugin_errors(self) -> dict[str, str]:
        """Custom strategies that are installed but unusable, with what is wrong."""
        return dict(self._broken)

    def names(self) -> list[str]:
        return sorted(self._strategies)

    def get(self, name: str) -> type[RoutingStrategy]:
        strategy = self._strategies.get(name)
        if strategy is not None:
            return strategy
        if name in self._broken:
            raise StrategyLoadError(name, self._broken[name])
        raise UnknownStrategy(name, self.names(), self.group)

    def build(self, name: str, params: Mapping[str, Any]) -> RoutingStrategy:
        """A ready strategy; raises UnknownStrategy, StrategyLoadError or pydantic's ValidationError."""
        strategy = self.get(name)
        return strategy(strategy.Params.model_validate(dict(params)))


def load_plugin(point: EntryPoint) -> type[RoutingStrategy]:
    try:
        loaded = point.load()
    except Exception as exc:
        detail = f"cannot load {point.value}: {type(exc).__name__}: {exc}"
        raise StrategyLoadError(point.name, detail) from exc
    problem = _shape_problem(point.name, loaded)
    if problem is not None:
        raise StrategyLoadError(point.name, f"{point.value} {problem}")
    return loaded


def _shape_problem(name: str, loaded: Any) -> str | None:
    if not isinstance(loaded, type):
        return f"is a {type(loaded).__name__}, not a strategy class"
    if getattr(loaded, "name", None) != name:
        return f"has name {getattr(loaded, 'name', None)!r}; it must equal the entry-point name '{name}'"
    params = getattr(loaded, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return "has no `Params` pydantic model"
    missing = [m for m in ("propose", "agent_ids") if not callable(getattr(loaded, m, None))]
    if missing:
        return f"has no {' or '.join(f'`{m}()`' for m in missing)} method"
    return None


def _clash(point: EntryPoint, builtin: type[Any]) -> str:
    return f"{point.value} reuses the name of the built-in strategy {builtin.__name__}; rename it"


@lru_cache(maxsize=1)
def default_registry() -> StrategyRegistry:
    """The process-wide registry: entry points are scanned once, on first use."""
    return StrategyRegistry.with_plugins()
