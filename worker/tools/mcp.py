"""The `mcp` tool kind: the tools of an MCP server (streamable HTTP), through livekit's MCP
support (livekit.agents.llm.mcp, which needs the `mcp` package: livekit-agents[mcp]).

The egress policy is asked when the toolset is built, before any connection: the server's
URL, and each `env` header's variable for that URL (the headers go with every request of the
session). The MCP SDK (2.x) follows a redirect only within the endpoint's origin, so the
headers cannot be led to another host. The connection is bounded like the http tool's
(worker/tools/mcp_client.py: no proxy from the environment, replies cut off past a cap, at most
MCP_MAX_TOOLS tools of bounded size taken). `allowed_tools` filters what the model is offered.
livekit connects the toolset when the agent starts (`Toolset.setup`); then each server tool
is wrapped so its calls are recorded, counted and timed out like every other tool's.
"""

import os
from typing import Any, cast

from livekit.agents import llm
from livekit.agents.llm.mcp import MCPToolset
from mcp.shared.exceptions import MCPError

from agent_configs.egress import EgressRefused, header_problems
from agent_configs.tools import McpTools
from worker.tools.context import (
    ToolBuildError,
    ToolContext,
    ToolFailure,
    as_result_text,
    cut,
    recorded_call,
)
from worker.tools.mcp_client import BoundedMcpServer

KIND = "mcp"
MCP_MAX_RESULT_CHARS = 4000


def mcp_toolset(spec: McpTools, context: ToolContext, field: str) -> llm.Toolset:
    server = BoundedMcpServer(
        spec.name,
        spec.url,
        allowed_tools=spec.allowed_tools,
        headers=_headers(spec, context, field),
        timeout_s=spec.timeout_s,
    )
    return RecordedMcpToolset(spec, context, server)


def _headers(spec: McpTools, context: ToolContext, field: str) -> dict[str, str]:
    problems: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    checks = [(f"{field}.url", None)] + [
        (f"{field}.headers.{name}.env", source.env)
        for name, source in spec.headers.items()
        if source.env
    ]
    for path, secret_env in checks:
        try:
            context.egress.check(spec.url, secret_env, field=path)
        except EgressRefused as exc:
            problems.append((path, f"refused by the egress policy: {exc.message}"))
    problems += [
        (refused.field, f"refused by the egress policy: {refused.message}")
        for refused in header_problems(spec.headers, field=f"{field}.headers")
    ]
    for name, source in spec.headers.items():
        if source.env is not None:
            value = os.environ.get(source.env)
            if not value:
                problems.append(
                    (f"{field}.headers.{name}.env", f"environment variable {source.env} is not set")
                )
            else:
                headers[name] = value
        elif source.session is not None:
            session_value = context.session_value(source.session)
            if session_value is not None:
                headers[name] = session_value
        elif source.value is not None:
            headers[name] = source.value
    if problems:
        raise ToolBuildError(problems)
    return headers


class RecordedMcpToolset(MCPToolset):
    """An MCPToolset whose tools record their calls in the session's ToolCallLog."""

    def __init__(self, spec: McpTools, context: ToolContext, server: BoundedMcpServer) -> None:
        super().__init__(id=f"mcp-{spec.name}", mcp_server=server)
        self._server = server
        self.spec = spec
        self.context = context
        self._recorded: set[int] = set()

    async def setup(self, *, reload: bool = False) -> "RecordedMcpToolset":
        await super().setup(reload=reload)
        self._tools = [
            tool if id(tool) in self._recorded else self._record(cast(llm.RawFunctionTool, tool))
            for tool in self._tools
        ]
        return self

    def _record(self, tool: llm.RawFunctionTool) -> llm.RawFunctionTool:
        name = tool.info.name
        context, timeout_s = self.context, self.spec.timeout_s
        server = self._server.peer

        async def call_mcp_tool(raw_arguments: dict[str, Any]) -> str:
            async def run() -> str:
                try:
                    result = await tool(raw_arguments=raw_arguments)
                except MCPError as exc:
                    # the server's error answer, or the SDK's for a reply it could not take
                    said = str(exc)
                    raise ToolFailure(said if server in said else f"{server}: {said}") from None
                return cut(as_result_text(result), MCP_MAX_RESULT_CHARS)

            # The server validates the arguments against its own schema and answers with an error.
            return await recorded_call(
                context,
                name=name,
                kind=KIND,
                arguments=raw_arguments,
                validator=None,
                body=run,
                timeout_s=timeout_s,
            )

        recorded = llm.function_tool(call_mcp_tool, raw_schema=tool.info.raw_schema)
        self._recorded.add(id(recorded))
        return recorded
