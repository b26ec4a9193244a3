"""The connection to one MCP server: livekit's `MCPServerHTTP` (streamable HTTP) over a bounded
httpx2 client (worker/bounded_http.py: no proxy or netrc from the environment, no redirect
followed by the client, every reply cut off past `MCP_MAX_REPLY_BYTES`), taking from the
server's tool list no more, and no larger, tools than a model can be offered.

livekit-agents 1.8 builds the transport in `client_streams()` and the tool list in
`_list_raw_tools()`; both are overridden here (tests/worker/test_tools_mcp_bounds.py fails if
an upgrade stops calling them).
"""

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2
import mcp.types
from livekit.agents.llm.mcp import MCPServerHTTP
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from worker.bounded_http import bounded_client

logger = logging.getLogger("switchboard.tools.mcp")

MCP_MAX_TOOLS = 128
"""The most tools taken from one server: OpenAI's chat completions API refuses a request that
offers more than 128 tools, and every offered tool's schema goes with every model call."""
MCP_MAX_TOOL_SCHEMA_BYTES = 16 * 1024
"""The largest tool taken (its name, description and input schema as JSON, what the model is
sent): ~4k tokens, repeated in every model call of the session."""
MCP_MAX_REPLY_BYTES = 4 * 1024 * 1024
"""The most of one reply read, and of one server-sent event (the SDK's own default, 1 MiB, made
a list of ~9,000 small tools fail the whole server). A full list of what is taken (128 tools of
16 KiB) is 2 MiB; a tool's result reaches the model cut to 4000 characters anyway."""


class BoundedMcpServer(MCPServerHTTP):
    def __init__(
        self,
        name: str,
        url: str,
        *,
        allowed_tools: list[str] | None,
        headers: dict[str, str],
        timeout_s: float,
    ) -> None:
        super().__init__(
            url=url,
            transport_type="streamable_http",
            allowed_tools=allowed_tools,
            headers=headers,
            timeout=timeout_s,
            client_session_timeout_seconds=timeout_s,
        )
        self.name = name
        self._allowed = set(allowed_tools) if allowed_tools else None
        self._listed: tuple[list[mcp.types.Tool], list[mcp.types.Tool]] | None = None

    @property
    def peer(self) -> str:
        """How errors and logs name it: the config's name and the server's origin (the URL's path
        and query may carry what is not for logs)."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"MCP server {self.name!r} ({parts.scheme}://{parts.hostname}{port})"

    def _create_http_client(
        self,
        headers: dict[str, Any] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """livekit's client factory (its `headers` setter updates the client made here)."""
        self._http_client = bounded_client(
            self.peer,
            MCP_MAX_REPLY_BYTES,
            timeout=timeout or httpx2.Timeout(self._timeout, read=self._sse_read_timeout),
            headers=headers if headers is not None else self._headers,
            auth=auth,
        )
        return self._http_client

    def client_streams(self) -> AbstractAsyncContextManager[TransportStreams]:
        @asynccontextmanager
        async def streams() -> AsyncIterator[TransportStreams]:
            async with self._create_http_client() as client:
                async with streamable_http_client(
                    url=self.url, http_client=client, max_sse_event_size=MCP_MAX_REPLY_BYTES
                ) as opened:
                    yield opened

        return streams()

    async def _list_raw_tools(self) -> list[mcp.types.Tool]:
        listed = await super()._list_raw_tools()
        if self._listed is None or self._listed[0] is not listed:  # livekit caches the list
            self._listed = (listed, self._bounded(listed))
        return self._listed[1]

    def _bounded(self, listed: list[mcp.types.Tool]) -> list[mcp.types.Tool]:
        """The allowed tools first (one far down a long list is still offered), then those
        small enough, then the first MCP_MAX_TOOLS of them; what is left out is logged."""
        wanted = [t for t in listed if self._allowed is None or t.name in self._allowed]
        fitting: list[mcp.types.Tool] = []
        for tool in wanted:
            size = len(
                json.dumps(
                    {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    }
                )
            )
            if size > MCP_MAX_TOOL_SCHEMA_BYTES:
                logger.warning(
                    "%s: tool %r left out, its schema is %d bytes (at most %d are taken)",
                    self.peer,
                    tool.name[:64],
                    size,
                    MCP_MAX_TOOL_SCHEMA_BYTES,
                )
            else:
                fitting.append(tool)
        if len(fitting) > MCP_MAX_TOOLS:
            logger.warning(
                "%s lists %d tools: only the first %d are offered to the model (MCP_MAX_TOOLS); "
                "name the ones the agent needs in allowed_tools",
                self.peer,
                len(fitting),
                MCP_MAX_TOOLS,
            )
        return fitting[:MCP_MAX_TOOLS]
