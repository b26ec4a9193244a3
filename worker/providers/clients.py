"""One OpenAI-compatible client per endpoint per process, over one TLS context, reaching only
its endpoint and reading bounded (worker/bounded_http.py): no redirect followed, no proxy or
netrc from the environment, a reply past `MAX_RESPONSE_BYTES` cut off.

Building an HTTP client builds a TLS context from the CA bundle: about 25 ms of CPU each time,
and a session used to build two (its LLM, then the structured-turn caller) while its room
connection was being set up. The context is made once at import (`bounded_http.TLS`), which for
job processes happens in livekit's forkserver (`preload_modules`), so every job inherits it;
clients are then made once per endpoint and shared by the session's LLM and its structured calls.
"""

import asyncio
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import httpx2
import openai

from worker.bounded_http import bounded_client
from worker.providers.registry import ChatEndpoint

DEFAULT_TIMEOUT = httpx2.Timeout(connect=15.0, read=5.0, write=5.0, pool=5.0)
"""livekit's openai plugin default; each request sets its own total from its connect options."""
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The most of one reply read. A streamed reply is one `chat.completion.chunk` event per token,
231 bytes each in OpenAI's format for a one-word delta (measured on its documented example), so
the largest reply a config may ask for (max_tokens 32768, agent_configs/models.py) is ~7.6 MB:
twice that leaves room for longer deltas and tool-call arguments."""

_clients: WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str | None, str], openai.AsyncClient]
] = WeakKeyDictionary()


def openai_client(endpoint: ChatEndpoint) -> openai.AsyncClient:
    """Per event loop, since pooled connections belong to the loop that opened them (one loop
    per job process). Never closed: a job process lives for one session, its clients with it."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (endpoint.base_url, endpoint.api_key)
    if key not in clients:
        clients[key] = openai.AsyncClient(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            max_retries=0,
            http_client=bounded_client(
                f"the {endpoint.provider} endpoint {_origin(endpoint.base_url)}",
                MAX_RESPONSE_BYTES,
                timeout=DEFAULT_TIMEOUT,
                limits=httpx2.Limits(
                    max_connections=50, max_keepalive_connections=50, keepalive_expiry=120
                ),
            ),
        )
    return clients[key]


def _origin(base_url: str | None) -> str:
    """Where the endpoint is, without its path, query or userinfo (never logged)."""
    if base_url is None:
        return "api.openai.com"
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
