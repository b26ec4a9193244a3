"""MCP servers as tools: a real MCP server (the SDK's own, streamable HTTP under uvicorn) on
loopback; the toolset build_tools returns is set up the way livekit sets it up when the agent
starts, and its tools are called the way livekit calls raw function tools."""

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("mcp", reason="MCP tools need the `mcp` package (livekit-agents[mcp])")

import uvicorn
from livekit.agents import llm
from mcp.server.mcpserver import MCPServer

from agent_configs.egress import EgressPolicy
from tests.factories import support_config
from tests.worker.tool_calls import call
from worker.tools import ToolBuildError, ToolCallLog, ToolContext, build_tools

SECRET = "mcp-token-77a1"


@dataclass
class RunningMcpServer:
    url: str
    authorizations: list[str | None] = field(default_factory=list)


@pytest.fixture
async def mcp_server() -> AsyncIterator[RunningMcpServer]:
    orders = MCPServer("orders")

    @orders.tool(description="The status of an order.")
    def order_status(order_id: str) -> str:
        return f"order {order_id} is shipped"

    @orders.tool(description="Cancel an order.")
    def cancel_order(order_id: str) -> str:
        return f"order {order_id} cancelled"

    app = orders.streamable_http_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    running = RunningMcpServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            running.authorizations.append(headers.get(b"authorization", b"").decode() or None)
        await app(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(recording, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    yield running
    server.should_exit = True
    await serving
    sock.close()


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> ToolContext:
    monkeypatch.setenv("MCP_TOKEN", SECRET)
    policy = EgressPolicy(_env_file=None, secrets={"MCP_TOKEN": ["127.0.0.1"]}, hosts=["127.0.0.1"])
    return ToolContext(
        session_id="sess-m",
        agent_id="support",
        user_id=None,
        room="room-m",
        egress=policy,
        log=ToolCallLog(),
        controls=None,  # type: ignore[arg-type]  # MCP tools never reach the session
        say=None,
    )


async def test_the_allowed_tools_of_an_mcp_server_are_offered_called_and_recorded(
    mcp_server: RunningMcpServer, context: ToolContext
) -> None:
    spec = {
        "kind": "mcp",
        "name": "orders",
        "url": mcp_server.url,
        "allowed_tools": ["order_status"],
        "headers": {"Authorization": {"env": "MCP_TOKEN"}},
    }
    (toolset,) = await build_tools(support_config(tools=[spec]), context)
    assert isinstance(toolset, llm.Toolset)
    await toolset.setup()
    try:
        tools = llm.ToolContext([toolset]).function_tools
        assert list(tools) == ["order_status"]

        result = await call(tools["order_status"], {"order_id": "A7"})

        assert "order A7 is shipped" in result
        (record,) = context.log.drain()
        assert (record.name, record.ok, record.arguments) == (
            "order_status",
            True,
            {"order_id": "A7"},
        )
        assert mcp_server.authorizations and set(mcp_server.authorizations) == {SECRET}
    finally:
        await toolset.aclose()


async def test_an_mcp_server_the_policy_refuses_is_never_contacted(
    mcp_server: RunningMcpServer, context: ToolContext
) -> None:
    elsewhere = mcp_server.url.replace("127.0.0.1", "localhost")
    spec = {
        "kind": "mcp",
        "name": "orders",
        "url": elsewhere,
        "headers": {"Authorization": {"env": "MCP_TOKEN"}},
    }

    with pytest.raises(ToolBuildError) as refused:
        await build_tools(support_config(tools=[spec]), context)

    assert [path for path, _ in refused.value.problems] == [
        "tools.0.url",
        "tools.0.headers.Authorization.env",
    ]
    assert "MCP_TOKEN may only be sent to 127.0.0.1" in refused.value.problems[1][1]
    assert mcp_server.authorizations == []


async def test_an_mcp_server_with_a_connection_level_header_is_never_contacted(
    mcp_server: RunningMcpServer, context: ToolContext
) -> None:
    """Written by hand past the admin API's 422: refused when the toolset is built."""
    spec = {
        "kind": "mcp",
        "name": "orders",
        "url": mcp_server.url,
        "headers": {"Authorization": {"env": "MCP_TOKEN"}, "HOST": {"value": "admin.internal"}},
    }

    with pytest.raises(ToolBuildError) as refused:
        await build_tools(support_config(tools=[spec]), context)

    [(path, message)] = refused.value.problems
    assert path == "tools.0.headers.HOST"
    assert message.startswith("refused by the egress policy: a connection-level header")
    assert mcp_server.authorizations == []
