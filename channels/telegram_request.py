"""python-telegram-bot's HTTP layer, ours: every Bot API call asks the egress policy, reads its
answer bounded and keeps the bot token out of logs and errors.

The token is part of every Bot API URL (`/bot<token>/sendMessage`, `/file/bot<token>/...`), so:

- each request asks `EgressPolicy.check(url, secret_env=token_env)` first: the token goes only
  to a host the operator lists for that variable in EGRESS_SECRETS, over https (loopback may
  be plain http, as the tests' stand-in Bot API is);
- requests go through httpx's transport, not its `AsyncClient`: the client logs every request
  URL at INFO ("HTTP Request: POST https://api.telegram.org/bot123:ABC/getUpdates"), which
  would write the token to the channels process's log once per poll; the transport logs
  nothing with the URL (httpcore's trace lines name the host only);
- every error message that could carry the URL has the token replaced by `<token>`;
- the environment is not trusted (no proxy from HTTP(S)_PROXY: a proxy would see the token);
  redirects are not followed (a 3xx is an error);
- every answer is read through a counter: one byte past the cap the connection is closed and
  the call fails (1 MB for API answers: a getUpdates batch of 100 long messages is ~500 KB;
  a file download has its own cap, `max_file_bytes`); answers are asked for uncompressed and an
  encoded one is refused, since the counter counts the bytes that arrive;
- each call has an overall deadline (connect + write + read timeouts + 5 s) besides httpx's
  per-phase ones, so a server that trickles one byte per read timeout cannot hold it forever.
"""

import asyncio
import json
import logging
from typing import Any

import httpx
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from agent_configs.egress import EgressPolicy, EgressRefused

logger = logging.getLogger("switchboard.channels.telegram")

MAX_API_BYTES = 1_000_000
MAX_FILE_BYTES = 5_000_000
"""A voice note is Opus at ~32 kbit/s: 5 MB is ~20 minutes, far past what a user records."""
DEFAULT_TIMEOUT_S = 10.0
DEADLINE_SLACK_S = 5.0
IDENTITY = frozenset({"", "identity"})


class _TokenRedactor(logging.Filter):
    """python-telegram-bot's Bot logs its API URLs, token and all, at DEBUG when it is made
    ("Set Bot API URL: https://api.telegram.org/bot123:ABC"): the tokens of this process's
    bots are replaced in what its logger writes."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for token in self.tokens:
            redacted = redacted.replace(token, "<token>")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_redactor = _TokenRedactor()
logging.getLogger("telegram.Bot").addFilter(_redactor)


class BotApiRefused(NetworkError):
    """A call this process would not make or an answer it would not read. A NetworkError, so
    python-telegram-bot passes it on as is (it wraps any other exception)."""


class BoundedBotRequest(BaseRequest):
    """`telegram.Bot(token, request=BoundedBotRequest(...))` for one binding's bot."""

    __slots__ = (
        "_token",
        "_token_env",
        "_policy",
        "_max_bytes",
        "_max_file_bytes",
        "_file_prefix",
        "_timeout",
        "_transport",
        "_closed",
    )

    def __init__(
        self,
        *,
        token: str,
        token_env: str,
        api_base_url: str,
        policy: EgressPolicy,
        max_bytes: int = MAX_API_BYTES,
        max_file_bytes: int = MAX_FILE_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._token = token
        if token:
            _redactor.tokens.add(token)
        self._token_env = token_env
        self._policy = policy
        self._max_bytes = max_bytes
        self._max_file_bytes = max_file_bytes
        self._file_prefix = f"{api_base_url.rstrip('/')}/file/bot"
        self._timeout = timeout_s
        self._transport: httpx.AsyncHTTPTransport | None = None
        self._closed = False

    @property
    def read_timeout(self) -> float | None:
        return self._timeout

    def redact(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    async def initialize(self) -> None:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0)

    async def shutdown(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | None | object = BaseRequest.DEFAULT_NONE,
        write_timeout: float | None | object = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | None | object = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | None | object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        try:
            self._policy.check(url, secret_env=self._token_env, field="telegram.token_env")
        except EgressRefused as exc:
            raise BotApiRefused(self.redact(str(exc))) from None
        return await self._exchange(
            url,
            method,
            request_data.json_parameters if request_data else None,
            request_data.multipart_data if request_data else None,
            read=self._seconds(read_timeout),
            write=self._seconds(write_timeout),
            connect=self._seconds(connect_timeout),
        )

    async def call(self, url: str, params: dict[str, Any], *, read_timeout: float) -> Any:
        """One Bot API method's `result` as plain JSON (no python-telegram-bot objects), for
        getUpdates: a batch is then taken update by update, so one that does not parse is
        answered and skipped instead of failing the whole batch at every poll."""
        try:
            self._policy.check(url, secret_env=self._token_env, field="telegram.token_env")
        except EgressRefused as exc:
            raise BotApiRefused(self.redact(str(exc))) from None
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        status, body = await self._exchange(
            url, "POST", form, None, read=read_timeout, write=self._timeout, connect=self._timeout
        )
        try:
            answer = json.loads(body)
        except ValueError:
            raise NetworkError(f"{self._where(url)}: answered {status} with no JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            description = answer.get("description") if isinstance(answer, dict) else None
            raise NetworkError(f"{self._where(url)}: {status} {self.redact(str(description))}")
        return answer.get("result")

    async def _exchange(
        self,
        url: str,
        method: str,
        data: dict[str, str] | None,
        files: Any,
        *,
        read: float,
        write: float,
        connect: float,
    ) -> tuple[int, bytes]:
        await self.initialize()
        timeouts = {"connect": connect, "read": read, "write": write, "pool": connect}
        request = httpx.Request(
            method,
            url,
            data=data,
            files=files,
            headers={"User-Agent": self.USER_AGENT, "Accept-Encoding": "identity"},
            extensions={"timeout": timeouts},
        )
        cap = self._max_file_bytes if url.startswith(self._file_prefix) else self._max_bytes
        try:
            async with asyncio.timeout(read + write + connect + DEADLINE_SLACK_S):
                return await self._send(request, cap)
        except TimeoutError:
            raise TimedOut(f"no complete answer from {self._where(url)} in time") from None
        except httpx.TimeoutException:
            raise TimedOut(f"no answer from {self._where(url)} in time") from None
        except httpx.HTTPError as exc:
            message = self.redact(f"{type(exc).__name__}: {exc}")
            raise NetworkError(f"{self._where(url)}: {message}") from None

    async def _send(self, request: httpx.Request, cap: int) -> tuple[int, bytes]:
        assert self._transport is not None
        response = await self._transport.handle_async_request(request)
        try:
            encoding = response.headers.get("Content-Encoding", "").strip().lower()
            if encoding not in IDENTITY:
                raise BotApiRefused(
                    f"the Bot API answered compressed ({encoding}) although an uncompressed "
                    "answer was asked for: its size cannot be bounded, so it is not read"
                )
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > cap:
                    raise BotApiRefused(
                        f"the Bot API's answer is larger than {cap} bytes: the rest was not read"
                    )
            return response.status_code, bytes(body)
        finally:
            await response.aclose()

    def _seconds(self, value: float | None | object) -> float:
        if isinstance(value, int | float):
            return float(value)
        return self._timeout

    def _where(self, url: str) -> str:
        """The host and the method, never the token: `api.telegram.org (sendMessage)`."""
        parts = httpx.URL(url)
        method = parts.path.rsplit("/", 1)[-1] if not url.startswith(self._file_prefix) else "file"
        return f"{parts.host} ({self.redact(method)})"
