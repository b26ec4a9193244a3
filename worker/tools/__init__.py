"""The tool execution layer: an agent config's `tools:` (agent_configs/tools.py) as livekit tools.

    tools = await build_tools(config, ToolContext(...))   # -> Agent(tools=tools)
    ...
    turn.tool_calls = [record.as_dict() for record in context.log.drain()]

Every kind goes through one wrapper (context.recorded_call): arguments checked against the
tool's JSON Schema, a deadline, a ToolCallRecord in `context.log`, the metrics
(`switchboard_tool_calls_total`, `switchboard_tool_call_seconds`), and a result the model reads
even when the call failed (`{"error": "timeout after 5.0s"}`): a tool never raises into the
session. A kind is added by registering its builder in TOOL_BUILDERS, not by an if-chain.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

from livekit.agents import llm

from agent_configs.models import AgentConfig
from worker.tools.builtins import end_session_tool, escalate_to_human_tool, transfer_to_agent_tool
from worker.tools.context import (
    SessionControls,
    ToolBuildError,
    ToolCallLog,
    ToolCallRecord,
    ToolContext,
    ToolFailure,
)
from worker.tools.http import http_tool
from worker.tools.plugins import ToolPluginError, ToolPluginRegistry, plugin_tool

__all__ = [
    "SessionControls",
    "ToolBuildError",
    "ToolCallLog",
    "ToolCallRecord",
    "ToolContext",
    "ToolFailure",
    "build_tools",
]

ToolBuilder = Callable[[Any, ToolContext, str], "llm.Tool | llm.Toolset"]
"""(spec, context, the spec's config path such as `tools.2`) -> a livekit tool or toolset."""


def _mcp_toolset(spec: Any, context: ToolContext, field: str) -> llm.Toolset:
    """Imported on use: the `mcp` package (livekit-agents[mcp]) is needed only by configs
    that name MCP servers."""
    try:
        from worker.tools.mcp import mcp_toolset
    except ImportError as exc:
        raise ToolBuildError(
            [(f"{field}.kind", f"MCP servers need the `mcp` package in the worker: {exc}")]
        ) from None
    return mcp_toolset(spec, context, field)


TOOL_BUILDERS: dict[str, ToolBuilder] = {
    "http": http_tool,
    "end_session": end_session_tool,
    "transfer_to_agent": transfer_to_agent_tool,
    "escalate_to_human": escalate_to_human_tool,
    "plugin": plugin_tool,
    "mcp": _mcp_toolset,
}


async def build_tools(
    config: AgentConfig, context: ToolContext, *, plugins: ToolPluginRegistry | None = None
) -> list[llm.Tool | llm.Toolset]:
    """livekit tools for the config's `tools` (raw JSON-schema function tools; MCP toolsets,
    which livekit connects when the agent starts). `plugins`: the registry to find `plugin`
    tools in (default: the installed `switchboard.tools` entry points).

    Raises ToolBuildError naming every tool that cannot be built; nothing is half-built."""
    builders: dict[str, ToolBuilder] = (
        TOOL_BUILDERS
        if plugins is None
        else {**TOOL_BUILDERS, "plugin": partial(plugin_tool, registry=plugins)}
    )
    tools: list[llm.Tool | llm.Toolset] = []
    problems: list[tuple[str, str]] = []
    for index, spec in enumerate(config.tools):
        field = f"tools.{index}"
        try:
            tools.append(builders[spec.kind](spec, context, field))
        except ToolPluginError as exc:
            problems.append((f"{field}.plugin", f"'{exc.name}' {exc.detail}"))
        except ToolBuildError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ToolBuildError(problems)
    return tools
