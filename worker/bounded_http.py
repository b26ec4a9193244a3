"""httpx2 clients that reach only the URL they are given and read every reply bounded.

The OpenAI-compatible chat clients (worker/providers/clients.py) and the MCP clients
(worker/tools/mcp.py) use httpx2, as openai 3.x and mcp 2.x require; they follow the http
tool's rules (worker/tools/http.py, httpx):

- the environment is not trusted (`trust_env=False`): HTTP(S)_PROXY / ALL_PROXY would add a
  host that sees the prompts, the tool calls and the keys, and netrc could add credentials;
- the client follows no redirect (a 3xx is the caller's error; the MCP SDK follows one itself
  only within the endpoint's origin, see mcp.shared._httpx_utils.stream_within_origin);
- every response body goes through a counter: one byte past `max_bytes` the connection is
  closed and the read fails with `ResponseTooLarge`, so a server that streams without end costs
  `max_bytes` of memory, not everything it sends;
- replies are asked for uncompressed (`Accept-Encoding: identity`) because the counter counts the
  bytes that arrive: a gzip body expands about a thousandfold after it. A body that comes
  encoded anyway is refused (`ResponseRefused`) before a byte of it is decoded.
"""

import ssl
from collections.abc import AsyncIterator
from typing import cast

import httpx2

IDENTITY = frozenset({"", "identity"})
TLS = httpx2.create_ssl_context()
"""httpx's own default (CA bundle; SSL_CERT_FILE / SSL_CERT_DIR honoured: trusting a private CA
is the operator's call, unlike a proxy), made once: building one costs ~25 ms of CPU, and job
processes inherit this one from livekit's forkserver (worker.server is preloaded there)."""


class ResponseRefused(httpx2.StreamError):
    """A reply that is not read. A StreamError on purpose: the MCP SDK turns one raised while it
    reads a reply into an error answer to that request, instead of ending the session."""


class ResponseTooLarge(ResponseRefused):
    def __init__(self, peer: str, max_bytes: int) -> None:
        super().__init__(
            f"the reply of {peer} is larger than {max_bytes} bytes: the rest was not read"
        )


class _CountedStream(httpx2.AsyncByteStream):
    def __init__(
        self, stream: httpx2.AsyncByteStream, peer: str, max_bytes: int, encoding: str
    ) -> None:
        self._stream = stream
        self._peer = peer
        self._max_bytes = max_bytes
        self._encoding = encoding

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._encoding not in IDENTITY:
            await self._stream.aclose()
            raise ResponseRefused(
                f"the reply of {self._peer} is compressed ({self._encoding}) although an "
                "uncompressed one was asked for: its size cannot be bounded, so it is not read"
            )
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._max_bytes:
                await self._stream.aclose()  # now, not when the caller gets to it: stop the sender
                raise ResponseTooLarge(self._peer, self._max_bytes)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """httpx2's own transport (no proxy), with every response body counted."""

    def __init__(
        self,
        peer: str,
        max_bytes: int,
        *,
        verify: ssl.SSLContext,
        limits: httpx2.Limits,
    ) -> None:
        self._peer = peer
        self._max_bytes = max_bytes
        self._inner = httpx2.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = await self._inner.handle_async_request(request)
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        # An async transport's response streams are async ones.
        stream = cast(httpx2.AsyncByteStream, response.stream)
        response.stream = _CountedStream(stream, self._peer, self._max_bytes, encoding)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client(
    peer: str,
    max_bytes: int,
    *,
    timeout: httpx2.Timeout,
    limits: httpx2.Limits | None = None,
    headers: dict[str, str] | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    """An httpx2 client for one peer (`peer` names it in errors: "MCP server 'orders'")."""
    return httpx2.AsyncClient(
        transport=BoundedTransport(peer, max_bytes, verify=TLS, limits=limits or httpx2.Limits()),
        timeout=timeout,
        headers=headers,
        auth=auth,
        follow_redirects=False,
        trust_env=False,
    )
