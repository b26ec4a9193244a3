"""The `webhook` routing strategy: ask the operator's service which agent type a room gets.

    {"strategy": "webhook", "params": {"url": "https://crm.example/switchboard/route",
                                      "timeout_s": 1.5, "include_user_details": true,
                                      "headers": {"Authorization": {"env": "CRM_HOOK_TOKEN"}}}}

The strategy POSTs the routing context as JSON (ROUTING_CONTEXT_FIELDS: what the room asked
for, never a secret, key or token; `user_details` only with `include_user_details`) and takes
back `{"agent_id": "sales-agent-v1", "variables": {"plan": "gold"}}`. The variables go with the
decision into the session: its instructions and greeting render them (`{{variables.plan}}`,
agent_configs/templates.py), and its record keeps them under `routing.variables`.

A room waits for this answer, so it is bounded: `timeout_s` (default 1.5 s, at most 5) covers
the connection, the request and reading the answer. Whatever goes wrong (a timeout, a refused
connection, a non-2xx status, an answer that is not JSON, an agent_id missing or not a slug,
variables over MAX_VARIABLES_BYTES) is a `no_proposal` whose reason says so (`timed out after
1.5s`, `cannot reach the hook: ConnectError`, `HTTP 503`, `answer: agent_id missing`) and the
chain goes on; an agent_id that is unknown or unavailable is skipped by the router like any
proposal. A connection failure is named by its kind only: the trail is shown to viewer keys,
and the exception's text (`[SSL: WRONG_VERSION_NUMBER]` from a plain HTTP port, `All connection
attempts failed` from a closed one) would tell them what listens where; the log has it.

Where it may call is the egress policy's decision (agent_configs/egress.py): the URL, and each
header secret for the URL's host, are checked when the rules are written (a 422 naming
`chain.N.params.url`) and again before every call; a refused URL never receives a request. The
URL passes the secret guard too (no `user:pass@`, no `?token=`): it is stored and shown with
the rules, so a secret goes in a header naming an env var. No redirect is followed, no proxy
from the environment is used, header values are never logged.
"""

import asyncio
import json
import logging
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from agent_configs.egress import (
    CONNECTION_HEADER,
    EgressPolicy,
    EgressRefused,
    check_headers,
    is_connection_header,
)
from agent_configs.models import Slug
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.strategy import Proposal
from agent_configs.secret_guard import secret_kind
from agent_configs.tools import HeaderName, HeaderValue

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1.5
MAX_TIMEOUT_S = 5.0
MAX_VARIABLES_BYTES = 8 * 1024
MAX_ANSWER_BYTES = 64 * 1024
"""An answer is read up to this size: an endless body must not hold the room (or memory)."""
ROUTING_CONTEXT_FIELDS = (
    "purpose",
    "agent_id",
    "user_id",
    "user_details",
    "tenant",
    "modality",
    "room",
)


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        min_length=1, max_length=2048, description="Where the routing context is POSTed."
    )
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=MAX_TIMEOUT_S)
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        max_length=20,
        description='Sent with each call: {"env": NAME} (a secret the egress policy lets go to the '
        'URL\'s host) or {"value": "constant"}.',
    )
    include_user_details: bool = Field(
        default=False, description="Send the room's user_details too (they may be personal data)."
    )

    @field_validator("url")
    @classmethod
    def _url_allowed(cls, url: str) -> str:
        kind = secret_kind(url)
        if kind is not None:
            raise ValueError(
                f"looks like {kind}; a URL is stored and shown with the rules - send the "
                'secret in a header naming an environment variable: {"env": "NAME"}'
            )
        try:
            EgressPolicy().check(url, field="url")
        except EgressRefused as exc:
            raise ValueError(exc.message) from None
        return url

    @field_validator("headers")
    @classmethod
    def _headers_allowed(
        cls, headers: dict[str, HeaderValue], info: ValidationInfo
    ) -> dict[str, HeaderValue]:
        url = info.data.get("url")
        for name, header in headers.items():
            if is_connection_header(name):
                raise ValueError(f"{name}: {CONNECTION_HEADER}")
            if header.session is not None:
                raise ValueError(
                    f"{name}: a webhook header takes `env` or `value` (no session exists yet)"
                )
            if header.env is not None and url is not None:
                try:
                    EgressPolicy().check(url, header.env, field=name)
                except EgressRefused as exc:
                    raise ValueError(f"{name}.env: {exc.message}") from None
        return headers


class BadAnswer(ValueError):
    """The hook answered, but not with something a room can be routed by."""


@dataclass(frozen=True)
class WebhookStrategy:
    """Ask an operator URL; see the module doc. `egress` is the process's policy by default."""

    params: WebhookParams
    egress: EgressPolicy = field(default_factory=EgressPolicy, compare=False)
    name: ClassVar[str] = "webhook"
    Params: ClassVar[type[BaseModel]] = WebhookParams

    async def propose(self, context: RoutingContext, now: datetime) -> Proposal:
        try:
            headers = self._headers()
        except EgressRefused as exc:
            return Proposal.nothing(f"refused by the egress policy: {exc}")
        timeout = self.params.timeout_s
        try:
            async with asyncio.timeout(timeout):
                status, body = await _post(
                    self.params.url, routing_payload(context, self.params), headers, timeout
                )
        except TimeoutError:
            return Proposal.nothing(f"timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            logger.warning(
                "routing hook at %s: %s: %s", _host(self.params.url), type(exc).__name__, exc
            )
            return Proposal.nothing(f"cannot reach the hook: {type(exc).__name__}")
        except BadAnswer as exc:
            return Proposal.nothing(f"answer: {exc}")
        if not 200 <= status < 300:
            return Proposal.nothing(f"HTTP {status}")
        try:
            agent_id, variables = parse_answer(body)
        except BadAnswer as exc:
            return Proposal.nothing(f"answer: {exc}")
        named = f" with {len(variables)} variable(s)" if variables else ""
        return Proposal(agent_id, f"the hook picked {agent_id}{named}", variables)

    def agent_ids(self) -> frozenset[str]:
        """None known in advance: the hook may answer any agent type (checked when it does)."""
        return frozenset()

    def _headers(self) -> dict[str, str]:
        """Checked against the policy again at call time: it may have narrowed since the write."""
        url = self.params.url
        self.egress.check(url, field="url")
        check_headers(self.params.headers, field="headers")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for name, header in self.params.headers.items():
            if header.env is not None:
                self.egress.check(url, header.env, field=f"headers.{name}.env")
                value = os.environ.get(header.env)
                if not value:
                    raise EgressRefused(f"headers.{name}.env", f"{header.env} is not set")
                headers[name] = value
            elif header.value is not None:
                headers[name] = header.value
        return headers


def _host(url: str) -> str:
    """For the log, as the audit names webhook receivers: the host, never the path or query."""
    return urlsplit(url).hostname or "?"


def routing_payload(context: RoutingContext, params: WebhookParams) -> dict[str, Any]:
    """What the hook is told: ROUTING_CONTEXT_FIELDS, `user_id` as the worker trusts it."""
    payload: dict[str, Any] = {
        "purpose": context.purpose,
        "agent_id": context.agent_id,
        "user_id": context.user_id,
        "tenant": context.tenant,
        "modality": context.modality,
        "room": context.room,
    }
    if params.include_user_details:
        payload["user_details"] = context.user_details
    return payload


def parse_answer(body: bytes) -> tuple[str, dict[str, Any]]:
    """(agent_id, variables) from the hook's answer, or BadAnswer saying what is wrong."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise BadAnswer("not JSON") from None
    if not isinstance(answer, dict):
        raise BadAnswer(f"expected a JSON object, got {type(answer).__name__}")
    agent_id = answer.get("agent_id")
    if agent_id is None:
        raise BadAnswer("agent_id missing")
    if not _is_slug(agent_id):
        raise BadAnswer(f"agent_id {json.dumps(agent_id)[:80]} is not an agent id")
    variables = answer.get("variables") or {}
    if not isinstance(variables, dict):
        raise BadAnswer("variables must be an object")
    size = len(json.dumps(variables, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_VARIABLES_BYTES:
        raise BadAnswer(f"variables are {size} bytes, over the {MAX_VARIABLES_BYTES}-byte limit")
    return agent_id, variables


_SLUG = TypeAdapter(Slug)


def _is_slug(value: object) -> bool:
    try:
        _SLUG.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


async def _post(
    url: str, payload: Mapping[str, Any], headers: dict[str, str], timeout_s: float
) -> tuple[int, bytes]:
    async with _client().stream(
        "POST", url, json=payload, headers=headers, timeout=timeout_s
    ) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise BadAnswer(
                    f"longer than {MAX_ANSWER_BYTES} bytes (HTTP {response.status_code})"
                )
        return response.status_code, bytes(body)


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """One client per event loop (a job process has one; tests have one per test), so calls
    reuse connections to the hook."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        _clients[loop] = client
    return client
