"""Custom Python tools from the `switchboard.tools` entry points, referenced by name in configs.

A package adds a tool by declaring, in its own pyproject.toml:

    [project.entry-points."switchboard.tools"]
    order_status = "my_package.tools:OrderStatus"

where `OrderStatus` is a class of this shape (no livekit import needed):

    class OrderStatus:
        description = "Look up an order's status by its number."
        parameters = {"type": "object", "properties": {"order_id": {"type": "string"}},
                      "required": ["order_id"]}

        def __init__(self, region: str = "eu") -> None:  # the config's `options`, as keywords
            self.region = region

        async def call(self, arguments: dict, context: ToolContext) -> str | dict | list:
            ...

and a config says `{"kind": "plugin", "name": "order_status", "plugin": "order_status",
"options": {"region": "us"}}`. The arguments reach `call` already checked against
`parameters`; what it returns (a dict or list as JSON) is what the model reads, cut to
PLUGIN_MAX_RESULT_CHARS. To tell the model what went wrong, raise `ToolFailure("no such
order")` (worker.tools) or livekit's `ToolError`; any other exception, or PLUGIN_TIMEOUT_S
passing, is an error result too (and the exception is logged). A plugin that
sends requests asks `context.egress.check(url, secret_env, field=...)` first, like the http
tool does.

Plugins are loaded once, when the registry is built; one that fails to import or does not
have this shape is recorded with its error, and only the configs that name it are affected
(the same rule as the routing strategies, agent_configs/routing/registry.py).
"""

import inspect
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from livekit.agents import llm

from agent_configs.tool_plugins import ENTRY_POINT_GROUP
from agent_configs.tools import PluginTool
from worker.tools.context import (
    ToolBuildError,
    ToolContext,
    arguments_validator,
    as_result_text,
    cut,
    recorded_call,
)

KIND = "plugin"
PLUGIN_TIMEOUT_S = 30.0
"""The http tool's longest timeout: a plugin that hangs must not hold the turn for ever."""
PLUGIN_MAX_RESULT_CHARS = 4000


class ToolPlugin(Protocol):
    description: str
    parameters: dict[str, Any]

    async def call(
        self, arguments: dict[str, Any], context: ToolContext
    ) -> str | dict[str, Any] | list[Any]: ...


class ToolPluginError(Exception):
    """A plugin a config names that this worker cannot use: not installed, or broken."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"tool plugin '{name}': {detail}")
        self.name = name
        self.detail = detail


class ToolPluginRegistry:
    def __init__(
        self,
        plugins: Mapping[str, type[Any]] | None = None,
        *,
        broken: Mapping[str, str] | None = None,
        group: str = ENTRY_POINT_GROUP,
    ) -> None:
        self._plugins = dict(plugins or {})
        self._broken = dict(broken or {})
        self.group = group

    @classmethod
    def with_plugins(cls, group: str = ENTRY_POINT_GROUP) -> "ToolPluginRegistry":
        """Every tool installed under the entry-point `group`."""
        found = list(entry_points(group=group))
        names = [point.name for point in found]
        plugins: dict[str, type[Any]] = {}
        broken: dict[str, str] = {}
        for point in found:
            if names.count(point.name) > 1:
                broken[point.name] = f"{names.count(point.name)} installed packages provide it"
                continue
            try:
                plugins[point.name] = load_plugin(point)
            except ToolPluginError as exc:
                broken[point.name] = exc.detail
        return cls(plugins, broken=broken, group=group)

    @property
    def plugin_errors(self) -> dict[str, str]:
        """Plugins that are installed but unusable, with what is wrong."""
        return dict(self._broken)

    def names(self) -> list[str]:
        return sorted(self._plugins)

    def get(self, name: str) -> type[ToolPlugin]:
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        if name in self._broken:
            raise ToolPluginError(name, self._broken[name])
        known = ", ".join(self.names()) or "none"
        raise ToolPluginError(
            name,
            f"is not installed in this worker (entry-point group {self.group}; known: {known})",
        )


def load_plugin(point: EntryPoint) -> type[Any]:
    try:
        loaded = point.load()
    except Exception as exc:
        raise ToolPluginError(
            point.name, f"cannot load {point.value}: {type(exc).__name__}: {exc}"
        ) from exc
    problem = shape_problem(loaded)
    if problem is not None:
        raise ToolPluginError(point.name, f"{point.value} {problem}")
    return loaded


def shape_problem(loaded: Any) -> str | None:
    """Why `loaded` is not a ToolPlugin class, or None."""
    if not isinstance(loaded, type):
        return f"is a {type(loaded).__name__}, not a tool class"
    description = getattr(loaded, "description", None)
    if not isinstance(description, str) or not description.strip():
        return "has no `description` string (what the model reads about the tool)"
    parameters = getattr(loaded, "parameters", None)
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        return 'has no `parameters` dict (a JSON Schema of type "object")'
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        return f"has `parameters` that are not a valid JSON Schema: {exc.message}"
    if not inspect.iscoroutinefunction(getattr(loaded, "call", None)):
        return "has no `async def call(self, arguments, context)` method"
    return None


def plugin_tool(
    spec: PluginTool, context: ToolContext, field: str, registry: "ToolPluginRegistry | None" = None
) -> llm.RawFunctionTool:
    """Raises ToolPluginError (not installed, broken) or ToolBuildError (options its
    constructor refuses)."""
    plugin_class = (registry or default_registry()).get(spec.plugin)
    try:
        plugin = plugin_class(**spec.options)
    except TypeError as exc:
        raise ToolBuildError(
            [(f"{field}.options", f"plugin '{spec.plugin}' refuses them: {exc}")]
        ) from None
    parameters = plugin_class.parameters
    validator = arguments_validator(parameters)

    async def call_plugin_tool(raw_arguments: dict[str, Any]) -> str:
        async def run() -> str:
            returned = await plugin.call(raw_arguments, context)
            return cut(as_result_text(returned), PLUGIN_MAX_RESULT_CHARS)

        return await recorded_call(
            context,
            name=spec.name,
            kind=KIND,
            arguments=raw_arguments,
            validator=validator,
            body=run,
            timeout_s=PLUGIN_TIMEOUT_S,
        )

    description = spec.description or plugin_class.description
    return llm.function_tool(
        call_plugin_tool,
        raw_schema={"name": spec.name, "description": description, "parameters": parameters},
    )


@lru_cache(maxsize=1)
def default_registry() -> ToolPluginRegistry:
    """The process-wide registry: entry points are scanned once, on first use."""
    return ToolPluginRegistry.with_plugins()
