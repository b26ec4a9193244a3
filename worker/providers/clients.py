"""One OpenAI-compatible client per endpoint per process, over one TLS context.

Building an HTTP client builds a TLS context from the CA bundle: about 25 ms of CPU each time,
and a session used to build two (its LLM, then the structured-turn caller) while its room
connection was being set up. The context is made once at import, which for job processes
happens in livekit's forkserver (`preload_modules`), so every job inherits it; clients are
then made once per endpoint and shared by the session's LLM and its structured calls.
"""

import asyncio
from weakref import WeakKeyDictionary

import httpx2
import openai

from worker.providers.registry import ChatEndpoint

TLS = httpx2.create_ssl_context()
"""httpx's own default (CA bundle, SSL_CERT_FILE / SSL_CERT_DIR honoured), made once."""
DEFAULT_TIMEOUT = httpx2.Timeout(connect=15.0, read=5.0, write=5.0, pool=5.0)
"""livekit's openai plugin default; each request sets its own total from its connect options."""

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
            http_client=httpx2.AsyncClient(
                verify=TLS,
                timeout=DEFAULT_TIMEOUT,
                follow_redirects=True,
                limits=httpx2.Limits(
                    max_connections=50, max_keepalive_connections=50, keepalive_expiry=120
                ),
            ),
        )
    return clients[key]
