"""MCP clients are bounded and pinned like the http tool: no proxy from the environment, a
reply past the cap cut off instead of read whole, and no more tools (nor larger ones) taken
from a server's list than a model can be offered. The server is the SDK's own low-level one
(streamable HTTP under uvicorn) on loopback, behind a thin ASGI layer that records requests
and answers one tool, `flood`, with a body that does not end."""

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("mcp", reason="MCP tools need the `mcp` package (livekit-agents[mcp])")

import mcp_types as types
import uvicorn
from aiohttp import web
from livekit.agents import llm
from mcp.server.lowlevel import Server

from agent_configs.egress import EgressPolicy
from tests.factories import support_config
from tests.loopback import proxy_everything_to, serve
from tests.worker.tool_calls import call
from worker.tools import ToolCallLog, ToolContext, build_tools
from worker.tools.mcp_client import MCP_MAX_REPLY_BYTES, MCP_MAX_TOOL_SCHEMA_BYTES, MCP_MAX_TOOLS

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
FLOOD_BYTES = 16 * MCP_MAX_REPLY_BYTES


@dataclass
class RunningMcpServer:
    url: str
    requests: int = 0
    flood_sent: int = 0
    flood_finished: asyncio.Event = field(default_factory=asyncio.Event)


def tool(name: str, description: str = "A tool.") -> types.Tool:
    schema = {"type": "object", "properties": {"order_id": {"type": "string"}}}
    return types.Tool(name=name, description=description, input_schema=schema)


def flooding(app: Asgi, running: RunningMcpServer) -> Asgi:
    """`app`, except that a call of the tool `flood` is answered with JSON whitespace that goes
    on for FLOOD_BYTES, counted until the client hangs up."""

    async def layer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        running.requests += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            rpc = json.loads(body) if body else {}
        except ValueError:
            rpc = {}
        if rpc.get("method") == "tools/call" and rpc["params"]["name"] == "flood":
            await flood(receive, send, running)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return layer


async def flood(receive: Any, send: Any, running: RunningMcpServer) -> None:
    hung_up = asyncio.ensure_future(receive())  # uvicorn answers http.disconnect when it happens
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    chunk = b" " * 65536
    try:
        while running.flood_sent < FLOOD_BYTES and not hung_up.done():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            running.flood_sent += len(chunk)
            await asyncio.sleep(0)
        if not hung_up.done():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        hung_up.cancel()
        running.flood_finished.set()


async def running_server(tools: list[types.Tool]) -> AsyncIterator[RunningMcpServer]:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = f"{params.name} answered for {params.arguments}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server = Server("many", on_list_tools=list_tools, on_call_tool=call_tool)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    running = RunningMcpServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
    app = flooding(server.streamable_http_app(), running)
    serving = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(serving.serve(sockets=[sock]))
    try:
        while not serving.started:
            assert not task.done(), "the MCP server did not start"
            await asyncio.sleep(0.02)
        yield running
    finally:
        serving.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def orders() -> AsyncIterator[RunningMcpServer]:
    tools = [tool("order_status"), tool("flood"), tool("huge", "x" * MCP_MAX_TOOL_SCHEMA_BYTES)]
    async for running in running_server(tools):
        yield running


@pytest.fixture
async def many() -> AsyncIterator[RunningMcpServer]:
    async for running in running_server([tool(f"tool_{i:05d}") for i in range(10_000)]):
        yield running


@pytest.fixture
def context() -> ToolContext:
    policy = EgressPolicy(_env_file=None, hosts=["127.0.0.1"])
    return ToolContext(
        session_id="sess-b",
        agent_id="support",
        user_id=None,
        room="room-b",
        egress=policy,
        log=ToolCallLog(),
        controls=None,  # type: ignore[arg-type]  # MCP tools never reach the session
        say=None,
    )


async def toolset_of(server: RunningMcpServer, context: ToolContext, **spec: Any) -> llm.Toolset:
    config = support_config(tools=[{"kind": "mcp", "name": "orders", "url": server.url, **spec}])
    (toolset,) = await build_tools(config, context)
    assert isinstance(toolset, llm.Toolset)
    return toolset


async def test_a_server_listing_ten_thousand_tools_gives_the_model_only_the_first_ones(
    many: RunningMcpServer, context: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    toolset = await toolset_of(many, context)
    with caplog.at_level(logging.WARNING, logger="switchboard.tools.mcp"):
        await toolset.setup()
    try:
        tools = llm.ToolContext([toolset]).function_tools
        assert list(tools) == [f"tool_{i:05d}" for i in range(MCP_MAX_TOOLS)]
        assert "for the order 7" in await call(tools["tool_00003"], {"order_id": "for the order 7"})
        (warning,) = [r.getMessage() for r in caplog.records if r.name == "switchboard.tools.mcp"]
        assert "MCP server 'orders'" in warning and "10000 tools" in warning
        assert f"the first {MCP_MAX_TOOLS}" in warning
    finally:
        await toolset.aclose()


async def test_allowed_tools_are_chosen_before_the_cap_so_a_late_one_is_still_offered(
    many: RunningMcpServer, context: ToolContext
) -> None:
    toolset = await toolset_of(many, context, allowed_tools=["tool_09999", "tool_00001"])
    await toolset.setup()
    try:
        assert set(llm.ToolContext([toolset]).function_tools) == {"tool_09999", "tool_00001"}
    finally:
        await toolset.aclose()


async def test_a_tool_whose_schema_is_larger_than_the_cap_is_left_out_and_named(
    orders: RunningMcpServer, context: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    toolset = await toolset_of(orders, context)
    with caplog.at_level(logging.WARNING, logger="switchboard.tools.mcp"):
        await toolset.setup()
    try:
        assert list(llm.ToolContext([toolset]).function_tools) == ["order_status", "flood"]
        (warning,) = [r.getMessage() for r in caplog.records if r.name == "switchboard.tools.mcp"]
        assert "'huge'" in warning
        assert "MCP server 'orders'" in warning and f"{MCP_MAX_TOOL_SCHEMA_BYTES}" in warning
    finally:
        await toolset.aclose()


async def test_a_reply_far_larger_than_the_cap_is_cut_off_and_the_call_fails_saying_so(
    orders: RunningMcpServer, context: ToolContext
) -> None:
    toolset = await toolset_of(orders, context, timeout_s=60)
    await toolset.setup()
    try:
        tools = llm.ToolContext([toolset]).function_tools

        result = await call(tools["flood"], {"order_id": "A7"})

        await asyncio.wait_for(orders.flood_finished.wait(), 30)
        # the sockets of both ends buffer some on top of the cap: never the whole body
        assert orders.flood_sent < MCP_MAX_REPLY_BYTES + 8 * 1024 * 1024 < FLOOD_BYTES
        (record,) = context.log.drain()
        assert record.ok is False and record.error is not None
        assert f"larger than {MCP_MAX_REPLY_BYTES} bytes" in record.error
        assert "MCP server 'orders'" in record.error and record.error in result
        # the session goes on: the next call is answered
        assert "A8" in await call(tools["order_status"], {"order_id": "A8"})
    finally:
        await toolset.aclose()


async def test_mcp_requests_never_go_through_the_environments_proxy(
    orders: RunningMcpServer, context: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxied: list[str] = []

    async def bad_gateway(request: web.Request) -> web.StreamResponse:
        proxied.append(str(request.url))
        return web.Response(status=502)

    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{tail:.*}", bad_gateway)
    runner, port = await serve(proxy_app)
    try:
        proxy_everything_to(monkeypatch, port)

        toolset = await toolset_of(orders, context)
        await toolset.setup()
        try:
            tools = llm.ToolContext([toolset]).function_tools
            assert "A9" in await call(tools["order_status"], {"order_id": "A9"})
        finally:
            await toolset.aclose()
        assert proxied == [], "a proxy is one more host that would see the tool calls and headers"
        assert orders.requests >= 3  # initialize, its notification, the list, the call
    finally:
        await runner.cleanup()
