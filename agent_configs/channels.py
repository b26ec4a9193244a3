"""Channel bindings: the ways into an agent besides a LiveKit frontend (a Telegram bot, the
website widget, the HTTP chat API, an AMQP queue), stored in `channel_bindings`.

A channel is a way in, not a new agent: a binding names only what the room's routing metadata
says (an agent type or a routing purpose, like any frontend's metadata) and how the channel
reaches its users. Routing rules, configs and versions, tools, fields, memory, records, events
and evals apply unchanged, because every conversation is a LiveKit room the worker serves.

Secrets never live here: a bot token, an AMQP URL with its password or a webhook secret is
named by its environment variable, which the operator's egress policy must allow for the host
it goes to (checked when the binding is written and again when the channel starts). The
widget's publishable key is not a secret (it sits in the page) and is stored as is.

The channel's own id of its user (a Telegram user id, the HTTP caller's user id, a queue
message's user) is trusted: it becomes the session's `user_id` (prefixed, so two channels'
ids never meet unless the operator gives them the same prefix on purpose), which per-user
memory and records key on. Text the user typed never is.
"""

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.egress import NEVER_SENDABLE_PREFIXES, EgressPolicy, EgressRefused
from agent_configs.models import EnvVarName, Slug

CHANNEL_BINDINGS = "channel_bindings"
CHANNEL_MESSAGES = "channel_messages"
CHANNEL_STATUS = "channel_status"
"""What the channels service made of each binding: `{_id: binding_id, state: "running" |
"error" | "stopped", error, at}` (channels/service.py writes it, the admin API shows it)."""
CHANNEL_KEY = "switchboard_channel"
"""Job-metadata key of a channel's room: `{"kind", "binding_id", "conversation_id"}`. The
worker copies it to the session record as `channel`."""
CHANNELS_SOURCE = "switchboard/channels"


class ChannelKind(StrEnum):
    TELEGRAM = "telegram"
    HTTP = "http"
    AMQP = "amqp"
    WIDGET = "widget"


class RateLimit(BaseModel):
    """Per user of the binding: at most `messages` in any `window_s` seconds."""

    model_config = ConfigDict(extra="forbid")

    messages: int = Field(default=20, ge=1, le=10_000)
    window_s: float = Field(default=60.0, gt=0, le=86_400)


class TelegramSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_env: EnvVarName = Field(
        description="The environment variable holding the bot token (never the token itself)."
    )
    api_base_url: str = Field(
        default="https://api.telegram.org",
        max_length=2048,
        description="The Bot API server; a self-hosted or test server on loopback works too.",
    )
    mode: Literal["polling", "webhook"] = "polling"
    webhook_secret_env: EnvVarName | None = Field(
        default=None,
        description="Webhook mode: the environment variable holding the secret Telegram sends "
        "in `X-Telegram-Bot-Api-Secret-Token` (required for webhook mode).",
    )

    @model_validator(mode="after")
    def _webhook_has_a_secret(self) -> "TelegramSettings":
        if self.mode == "webhook" and self.webhook_secret_env is None:
            raise ValueError(
                "webhook_secret_env: required in webhook mode (updates without the secret "
                "header are refused)"
            )
        return self


class HttpChatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Names of the API keys (role token) that may call this binding.",
    )


class AmqpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_env: EnvVarName = Field(
        description="The environment variable holding amqp://user:pass@host:port/vhost."
    )
    queue: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    prefetch: int = Field(default=4, ge=1, le=100)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"


ORIGIN_PATTERN = r"^https?://[A-Za-z0-9.\-\[\]:]+$"


class WidgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origins: list[str] = Field(
        min_length=1,
        max_length=50,
        description='Exact origins allowed to use the key, e.g. "https://shop.example".',
    )
    purposes: list[str] = Field(default_factory=list, max_length=50)
    agent_ids: list[Slug] = Field(default_factory=list, max_length=50)
    publishable_key: str | None = Field(
        default=None,
        description="Generated when the binding is created; not a secret (it is in the page).",
    )

    @model_validator(mode="after")
    def _origins_are_origins(self) -> "WidgetSettings":
        for i, origin in enumerate(self.origins):
            if not re.match(ORIGIN_PATTERN, origin) or origin.endswith("/"):
                raise ValueError(
                    f"origins[{i}]: {origin!r} is not an origin (scheme://host[:port], no path)"
                )
        return self


class ChannelBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binding_id: Slug
    kind: ChannelKind
    enabled: bool = True
    agent_id: Slug | None = None
    purpose: str | None = Field(default=None, min_length=1, max_length=200)
    user_details: dict[str, Any] = Field(default_factory=dict)
    user_id_prefix: str | None = Field(default=None, max_length=100)
    idle_ttl_s: float = Field(default=300.0, ge=1, le=86_400)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    max_message_chars: int = Field(default=4000, ge=1, le=32_000)
    telegram: TelegramSettings | None = None
    http: HttpChatSettings | None = None
    amqp: AmqpSettings | None = None
    widget: WidgetSettings | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _one_target_and_its_settings(self) -> "ChannelBinding":
        if (self.agent_id is None) == (self.purpose is None):
            raise ValueError("agent_id / purpose: give exactly one (what the room is routed by)")
        for kind in ChannelKind:
            present = getattr(self, kind.value) is not None
            if kind == self.kind and not present:
                raise ValueError(f"{kind.value}: required for a {kind.value} binding")
            if kind != self.kind and present:
                raise ValueError(f"{kind.value}: only for a {kind.value} binding")
        return self

    def effective_prefix(self) -> str:
        return (
            self.user_id_prefix
            if self.user_id_prefix is not None
            else f"{self.kind}:{self.binding_id}:"
        )

    def trusted_user_id(self, channel_user: str) -> str:
        return f"{self.effective_prefix()}{channel_user}"

    def routing_metadata(self) -> dict[str, Any]:
        """What a frontend would put in the room's metadata: the target, nothing else."""
        target = {"agent_id": self.agent_id} if self.agent_id else {"purpose": self.purpose}
        return target | ({"user_details": dict(self.user_details)} if self.user_details else {})

    def channel_mark(self, conversation_id: str) -> dict[str, str]:
        return {
            "kind": str(self.kind),
            "binding_id": self.binding_id,
            "conversation_id": conversation_id,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "ChannelBinding":
        values = {k: v for k, v in document.items() if k != "_id"}
        return cls.model_validate({**values, "binding_id": document["_id"]})

    def document(self) -> dict[str, Any]:
        values = self.model_dump(mode="python", exclude={"binding_id"})
        return {"_id": self.binding_id, **values}


def channel_of_job(raw: dict[str, Any]) -> dict[str, str] | None:
    """The channel mark of a room's job metadata, if it is a well-formed one."""
    value = raw.get(CHANNEL_KEY)
    if not isinstance(value, dict):
        return None
    mark = {k: value.get(k) for k in ("kind", "binding_id", "conversation_id")}
    if not all(isinstance(v, str) and 0 < len(v) <= 200 for v in mark.values()):
        return None
    return {k: str(v) for k, v in mark.items()}


async def list_bindings(database: AsyncDatabase) -> list[ChannelBinding]:
    cursor = database[CHANNEL_BINDINGS].find({}).sort("_id", 1)
    return [ChannelBinding.from_document(d) async for d in cursor]


async def get_binding(database: AsyncDatabase, binding_id: str) -> ChannelBinding | None:
    document = await database[CHANNEL_BINDINGS].find_one({"_id": binding_id})
    return ChannelBinding.from_document(document) if document else None


async def binding_by_publishable_key(database: AsyncDatabase, key: str) -> ChannelBinding | None:
    document = await database[CHANNEL_BINDINGS].find_one({"widget.publishable_key": key})
    return ChannelBinding.from_document(document) if document else None


def now() -> datetime:
    return datetime.now(UTC)


async def ensure_channel_indexes(database: AsyncDatabase) -> None:
    """The widget's lookup by key (every token it asks for) and a binding's traffic, newest
    first or counted over a window. The publishable-key index is not unique: a unique index
    counts every non-widget binding (no key) as one missing value, and FerretDB v1 has no
    partial indexes; 192 random bits do not collide."""
    await database[CHANNEL_BINDINGS].create_index([("widget.publishable_key", ASCENDING)])
    await database[CHANNEL_MESSAGES].create_index([("binding_id", ASCENDING), ("at", DESCENDING)])
    await database[CHANNEL_MESSAGES].create_index(
        [("binding_id", ASCENDING), ("status", ASCENDING), ("at", DESCENDING)]
    )


# -- the egress policy -----------------------------------------------------------------------


def _secret_name_problem(name: str, field: str, policy: EgressPolicy) -> EgressRefused | None:
    """A secret the policy never lets a config send: a Switchboard credential, or a name the
    operator did not list in EGRESS_SECRETS."""
    if name.upper().startswith(NEVER_SENDABLE_PREFIXES):
        return EgressRefused(
            field, f"{name} is a Switchboard credential and is never sent anywhere"
        )
    if name not in policy.secrets:
        return EgressRefused(
            field,
            f"{name} is not a key configs may use (the operator lists them in EGRESS_SECRETS)",
        )
    return None


def binding_problems(binding: ChannelBinding, policy: EgressPolicy) -> list[EgressRefused]:
    """Every secret `binding` would make the channels process send that the policy refuses
    (empty: all allowed), each naming the binding's field.

    Telegram: the bot token goes to `api_base_url`'s host in every request's path, and in
    webhook mode the webhook secret goes there too (setWebhook's `secret_token`), so both are
    checked as secrets sent to that host. AMQP: the broker's host is inside the URL the env
    var holds, unknown when the binding is written, so only the name is checked here (never a
    Switchboard credential, listed in EGRESS_SECRETS); the channel checks the URL's host when
    it starts. The HTTP chat API and the widget send no secret anywhere."""
    problems: list[EgressRefused] = []
    if binding.telegram is not None:
        settings = binding.telegram
        secrets = [("telegram.token_env", settings.token_env)]
        if settings.webhook_secret_env is not None:
            secrets.append(("telegram.webhook_secret_env", settings.webhook_secret_env))
        for field, name in secrets:
            refused = _secret_name_problem(name, field, policy)
            if refused is None:
                try:
                    policy.check(settings.api_base_url, name, field="telegram.api_base_url")
                except EgressRefused as exc:
                    refused = exc
            if refused is not None:
                problems.append(refused)
    if binding.amqp is not None:
        refused = _secret_name_problem(binding.amqp.url_env, "amqp.url_env", policy)
        if refused is not None:
            problems.append(refused)
    return problems
