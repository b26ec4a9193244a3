"""The `http` tool kind: one HTTP request per call, to a URL the egress policy allows.

A call goes: the model's arguments are checked against the tool's JSON Schema; the URL
template is filled (`{order_id}` from the arguments, path-encoded; `{session_id}`,
`{agent_id}`, `{user_id}`, `{room}` from the session; a value that is a dot segment, `.` or
`..`, is refused wherever it comes from); the remaining arguments, less any name the URL binds
from the session, become the query string (GET, DELETE) or the JSON body (POST, PUT, PATCH);
the final URL is checked against the egress policy, the header names against its
connection-level ones, and each `env` header's variable against it for that URL, right before
sending. A refused call never reaches its host, not even as a connection.

What can leave: no redirect is followed (a 3xx could point anywhere: it is an error result),
the client ignores proxy and netrc settings of the environment (`trust_env=False`: a proxy is
one more host that would see the headers), and header values are never logged or recorded.
"""

import asyncio
import json
import logging
import os
import string
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpcore  # noqa: F401  # imported here so the forkserver has it, see TLS
import httpx
from livekit.agents import llm

from agent_configs.egress import EgressRefused, check_headers
from agent_configs.tools import SESSION_VALUES, HttpTool, session_bound_names
from worker.tools.context import (
    Outcome,
    ToolContext,
    ToolFailure,
    arguments_validator,
    as_result_text,
    cut,
    recorded_call,
)

logger = logging.getLogger("switchboard.tools.http")

KIND = "http"
MAX_RESPONSE_BYTES = 1 << 20
"""Read at most this much of a response (the model sees max_result_chars of it anyway)."""
ERROR_PREVIEW_CHARS = 200
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DOT_SEGMENTS = frozenset({".", ".."})
USER_AGENT = "Switchboard-tool/1"

TLS = httpx.create_ssl_context(trust_env=False)
"""The tool client's TLS context (the certifi bundle, as httpx's default with trust_env off),
made once per process at import. httpx builds one per client otherwise: ~17 ms of CPU, paid by
the first http tool call of every session, since each session runs in a new job process. This
module is imported in livekit's forkserver (via worker.server), so job processes inherit the
context, and httpcore, which httpx imports only when its first client is built (~11 ms more)."""

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)
_waiting: set[asyncio.Task[None]] = set()


def shared_client() -> httpx.AsyncClient:
    """One client per event loop (a job process runs one session), so calls to the same
    host reuse a kept-alive connection: a new TLS handshake costs more than the 5 ms budget.
    Built on the process's TLS context, it takes ~0.1 ms: the first call of a session pays that,
    not a new context."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            verify=TLS,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=32, max_keepalive_connections=16, keepalive_expiry=30.0
            ),
        )
        _clients[loop] = client
    return client


async def close_shared_client() -> None:
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def http_tool(spec: HttpTool, context: ToolContext, field: str) -> llm.RawFunctionTool:
    """A livekit raw function tool for `spec`; `field` is its config path (`tools.0`), used in
    egress refusals so they name what to fix."""
    request = HttpRequestTemplate(spec, field)
    validator = arguments_validator(spec.parameters)

    async def call_http_tool(raw_arguments: dict[str, Any]) -> str:
        async def send() -> str:
            say_waiting_message(spec.waiting_message, context)
            return await request.send(raw_arguments, context)

        return await recorded_call(
            context,
            name=spec.name,
            kind=KIND,
            arguments=raw_arguments,
            validator=validator,
            body=send,
            timeout_s=spec.timeout_s,
        )

    schema = {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
    return llm.function_tool(call_http_tool, raw_schema=schema)


def say_waiting_message(message: str | None, context: ToolContext) -> None:
    """Started, not awaited: the request goes out while the message is being said."""
    if message is None or context.say is None:
        return
    task = asyncio.create_task(context.say(message), name="tool-waiting-message")
    _waiting.add(task)
    task.add_done_callback(_waiting_done)


def _waiting_done(task: "asyncio.Task[None]") -> None:
    _waiting.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a tool's waiting message could not be said: %s", task.exception())


class HttpRequestTemplate:
    def __init__(self, spec: HttpTool, field: str) -> None:
        self.spec = spec
        self.field = field
        self._parts = [
            (literal, name) for literal, name, _, _ in string.Formatter().parse(spec.url)
        ]
        self._session_bound = frozenset(session_bound_names(spec.url))

    async def send(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        url, rest = self.url_for(arguments, context)
        body: Any = None
        if self.spec.method in BODY_METHODS:
            body = rest
        elif rest:
            # Appended as text: httpx's copy_merge_params re-parses the URL (~0.1 ms a call).
            url += ("&" if "?" in url else "?") + urlencode(query_params(rest), quote_via=quote)
        self._allowed(url, None, f"{self.field}.url", context)
        headers = self.headers_for(url, context)
        try:
            async with shared_client().stream(
                self.spec.method, url, json=body, headers=headers, timeout=self.spec.timeout_s
            ) as response:
                content = await read_capped(response)
        except httpx.TimeoutException:
            raise ToolFailure(f"timeout after {self.spec.timeout_s:g}s", Outcome.TIMEOUT) from None
        except httpx.InvalidURL as exc:
            raise ToolFailure(f"the filled url is not valid: {exc}") from None
        except httpx.HTTPError as exc:
            raise ToolFailure(f"request failed: {type(exc).__name__}: {exc}") from None
        return self.result(response, content)

    def url_for(
        self, arguments: Mapping[str, Any], context: ToolContext
    ) -> tuple[str, dict[str, Any]]:
        """The filled template (without a #fragment, which is never sent) and the arguments it
        did not take. A session value's name always takes the session's value, and an argument
        named like anything the URL binds from the session is left out, so the model cannot
        pose as another user. A dot segment (`.`, `..`) is refused from either source: encoded
        or not, the client resolves it and the request climbs the path."""
        rest = dict(arguments)
        filled: list[str] = []
        for literal, name in self._parts:
            filled.append(literal)
            if name is None:
                continue
            if name in SESSION_VALUES:
                value = context.session_value(name)
                if value is None:
                    raise ToolFailure(f"the url needs {name}, which this session does not have")
                if value in DOT_SEGMENTS:
                    raise ToolFailure(
                        f"the session's {name} '{value}' is not usable in the url (a dot segment)"
                    )
            elif name in rest:
                value = text_value(rest.pop(name))
                if value in DOT_SEGMENTS:
                    raise ToolFailure(f"invalid arguments: {name}: '{value}' is not a usable value")
            else:
                raise ToolFailure(f"invalid arguments: {name} is required")
            filled.append(quote(value, safe=""))
        for name in self._session_bound:
            rest.pop(name, None)
        return "".join(filled).partition("#")[0], rest

    def headers_for(self, url: str, context: ToolContext) -> dict[str, str]:
        try:
            check_headers(self.spec.headers, field=f"{self.field}.headers")
        except EgressRefused as exc:
            raise ToolFailure(f"refused by the egress policy: {exc}", Outcome.REFUSED) from None
        headers = {"User-Agent": USER_AGENT}
        for header, source in self.spec.headers.items():
            path = f"{self.field}.headers.{header}"
            if source.env is not None:
                self._allowed(url, source.env, f"{path}.env", context)
                value = env_value(source.env)
                if value is None:
                    raise ToolFailure(
                        f"header {header}: environment variable {source.env} is not set"
                    )
                headers[header] = value
            elif source.session is not None:
                session_value = context.session_value(source.session)
                if session_value is not None:  # an unknown user_id is left out, not sent empty
                    headers[header] = session_value
            elif source.value is not None:
                headers[header] = source.value
        return headers

    @staticmethod
    def _allowed(url: str, secret_env: str | None, field: str, context: ToolContext) -> None:
        try:
            context.egress.check(url, secret_env, field=field)
        except EgressRefused as exc:
            raise ToolFailure(f"refused by the egress policy: {exc}", Outcome.REFUSED) from None

    def result(self, response: httpx.Response, content: bytes) -> str:
        text = content.decode(response.charset_encoding or "utf-8", errors="replace")
        if 300 <= response.status_code < 400:
            raise ToolFailure(f"HTTP {response.status_code}: redirects are not followed")
        if not response.is_success:
            preview = " ".join(text.split())[:ERROR_PREVIEW_CHARS]
            raise ToolFailure(f"HTTP {response.status_code}" + (f": {preview}" if preview else ""))
        document = json_document(response, content)
        if self.spec.result_pointer is not None:
            if document is None:
                kind = response.headers.get("content-type", "no content type")
                raise ToolFailure(f"result_pointer needs a JSON response, got {kind}")
            try:
                document = resolve_pointer(document.value, self.spec.result_pointer)
            except LookupError:
                raise ToolFailure(
                    f"result_pointer {self.spec.result_pointer}: not in the response"
                ) from None
            return cut(as_result_text(document), self.spec.max_result_chars)
        if document is not None:
            return cut(as_result_text(document.value), self.spec.max_result_chars)
        return cut(text, self.spec.max_result_chars)


def env_value(name: str) -> str | None:
    return os.environ.get(name) or None


async def read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ToolFailure(
                f"HTTP {response.status_code}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


class _Json:
    """A parsed JSON body (a box, since the document itself may be null or false)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def json_document(response: httpx.Response, content: bytes) -> _Json | None:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (media_type == "application/json" or media_type.endswith("+json")):
        return None
    try:
        return _Json(json.loads(content))
    except ValueError:
        return None


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: `/items/0/name`; `~1` is `/` and `~0` is `~` inside a token."""
    if pointer == "":
        return document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, list):
            if (
                not token.isdigit()
                or (token != "0" and token.startswith("0"))
                or int(token) >= len(document)
            ):
                raise LookupError(token)
            document = document[int(token)]
        elif isinstance(document, dict) and token in document:
            document = document[token]
        else:
            raise LookupError(token)
    return document


def text_value(value: Any) -> str:
    """An argument as URL text: strings as they are, JSON for everything else (true, 3, [..])."""
    return value if isinstance(value, str) else as_result_text(value)


def query_params(arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A list repeats its key (`?tag=a&tag=b`); null leaves the key out."""
    params: list[tuple[str, str]] = []
    for name, value in arguments.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            params.append((name, text_value(item)))
    return params
