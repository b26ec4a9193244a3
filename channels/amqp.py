"""The AMQP 0-9-1 channel: a backend puts a request on a queue and gets the agent's answer on
the queue it names in `reply_to`, as RPC over RabbitMQ usually goes.

Each enabled `amqp` binding consumes its `queue`, declared durable with a dead-letter queue
beside it (`{queue}.dead`, through the default exchange). A request's body is JSON:

    {"user_id": "u-42",                  # required: the producer's id of the user (trusted)
     "conversation_id": "order-981",     # optional: defaults to user_id (one per user)
     "text": "Where is my parcel?",      # required, 1..max_message_chars characters
     "user_details": {"tier": "gold"}}   # optional: added to the room's user_details

with the AMQP properties `reply_to` (where the answer goes, optional) and `correlation_id`
(copied onto the answer); `message_id` (else the correlation id) names the message in the
records and events. The answer, published to the default exchange with routing key
`reply_to` and the same `correlation_id`:

    {"reply": "...", "fields": {...} | null, "session_id": "...", "agent_id": "...",
     "conversation_id": "order-981", "turn_index": 0}

or, when there is none, `{"error": {"code": "rate_limited", "message": "..."},
"conversation_id": ...}` (codes: README, Channels; `retry_after_s` with `rate_limited`).

What happens to a request (at least once: the ack is the last step):
- answered: the reply is published (confirmed by the broker) once the turn is in `turns`,
  then the request is acked. If it does not get there, it is treated as a transient failure;
- a poison message (not JSON, a missing or invalid field, over max_message_chars, empty):
  an error reply, then `reject(requeue=False)`: the broker moves it to `{queue}.dead`, where
  it stays for a person to look at, and the consumer goes on;
- rate limited (the user sends faster than the binding's rate_limit): an error reply, then
  an ack: the request was read and answered, and replaying it later would surprise the user;
- a transient failure (`no_agent`, `timeout`, `internal`): `nack(requeue=True)` the
  first time, no reply; on the redelivery (the broker's `redelivered` flag) an error reply and
  a dead letter, so a message that always fails cannot go round forever.
Every message is recorded in `channel_messages` with its `message.*` CloudEvents, by the hub,
or here for a body the hub never sees (not JSON, no user).

The URL (with its password) comes from the environment variable the binding names
(`amqp.url_env`), checked against the egress policy for the broker's host (plain `amqp://`
carries it in the clear, so like `http://` it may go to loopback only; use `amqps://`).
"""

import asyncio
import contextlib
import json
import logging
import os
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_configs.channels import (
    AmqpSettings,
    ChannelBinding,
    ChannelKind,
)
from agent_configs.egress import EgressPolicy, EgressRefused
from channels.hub import ChannelError, Hub, Inbound, Reply
from channels.registry import ChannelContext, register

logger = logging.getLogger("switchboard.channels.amqp")

MAX_BODY_BYTES = 256 * 1024
"""A body is read whole before it is parsed: past this it is a poison message (`too_long`),
whatever the binding's max_message_chars (at most 32,000 characters, 128 KB of UTF-8)."""
POISON = frozenset({"malformed", "too_long", "unsupported", "unknown_chat", "disabled"})
"""Refusals that would come back the same on every delivery: dead-lettered at once."""
ANSWERED = frozenset({"rate_limited"})
"""Refusals that are an answer: replied to and acked."""
CONNECT_TIMEOUT_S = 10.0
STOP_GRACE_S = 10.0
"""How long stop() lets requests being answered finish before the connection closes (the
broker then requeues what was not acked)."""


class AmqpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    conversation_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    text: str
    user_details: dict[str, Any] = Field(default_factory=dict)


class Unreadable(Exception):
    """A body the hub cannot be given (not JSON, a missing or invalid field)."""

    def __init__(self, message: str, user: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.user = user


def broker_url(settings: AmqpSettings, egress: EgressPolicy, environ: dict[str, str]) -> str:
    """The broker URL from `settings.url_env`, allowed by the egress policy; ValueError (or
    EgressRefused, one) naming the field otherwise."""
    url = environ.get(settings.url_env)
    if not url:
        raise ValueError(f"amqp.url_env: the environment variable {settings.url_env} is not set")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"amqp.url_env: {settings.url_env} is not a URL") from None
    if parts.scheme not in ("amqp", "amqps") or not host:
        raise ValueError(
            f"amqp.url_env: {settings.url_env} must hold amqp://user:pass@host:port/vhost "
            "(or amqps://)"
        )
    # The policy speaks http(s): amqps is to amqp what https is to http (a secret goes in the
    # clear to loopback only). The URL's own port, so a `host:port` entry can match it.
    scheme = "https" if parts.scheme == "amqps" else "http"
    port = port or (5671 if parts.scheme == "amqps" else 5672)
    shown = f"[{host}]" if ":" in host else host
    egress.check(f"{scheme}://{shown}:{port}/", settings.url_env, field="amqp.url_env")
    return url


def parse_request(body: bytes) -> AmqpRequest:
    if len(body) > MAX_BODY_BYTES:
        raise ChannelError("too_long", f"body: {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unreadable("body: not JSON (a JSON object with user_id and text)") from None
    user = value.get("user_id") if isinstance(value, dict) else None
    try:
        return AmqpRequest.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Unreadable(
            f"{where}: {first['msg']}", user if isinstance(user, str) else None
        ) from None


class AmqpRunner:
    """One binding's consumer: a robust connection (it reconnects, declares again and consumes
    again by itself), one channel with the binding's prefetch, publisher confirms on."""

    def __init__(
        self,
        binding: ChannelBinding,
        hub: Hub,
        context: ChannelContext,
        environ: dict[str, str] | None = None,
    ) -> None:
        assert binding.amqp is not None
        self.binding = binding
        self.settings: AmqpSettings = binding.amqp
        self._hub = hub
        self._context = context
        self._environ = dict(os.environ) if environ is None else environ
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        try:
            url = broker_url(self.settings, self._context.egress, self._environ)
        except EgressRefused as exc:
            raise ValueError(str(exc)) from None
        self._connection = await aio_pika.connect_robust(
            url,
            timeout=CONNECT_TIMEOUT_S,
            client_properties={
                "connection_name": f"switchboard-channels:{self.binding.binding_id}"
            },
        )
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.settings.prefetch)
        dead = self.settings.dead_letter_queue
        try:
            await channel.declare_queue(dead, durable=True)
            queue = await channel.declare_queue(
                self.settings.queue,
                durable=True,
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
            )
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            raise ValueError(
                f"amqp.queue: {self.settings.queue} (or {dead}) exists with other arguments "
                f"than durable + dead-lettering to {dead}: {exc}"
            ) from None
        self._channel, self._queue = channel, queue
        self._consumer_tag = await queue.consume(self._on_message)
        logger.info("consuming %s for %s", self.settings.queue, self.binding.binding_id)

    async def stop(self) -> None:
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._queue.cancel(self._consumer_tag)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=STOP_GRACE_S)
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._queue = None

    # -- a message --------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._handle(message)
        except Exception:
            # Not even the reply or the nack went through (the connection dropped): the broker
            # redelivers what was not acked.
            logger.exception("an AMQP message of %s was not settled", self.binding.binding_id)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or message.correlation_id
        try:
            request = parse_request(message.body)
        except Unreadable as exc:
            error = ChannelError("malformed", exc.message)
            self._record_unreadable(exc.user, message_id, error)
            await self._settle_refused(message, error, conversation_id=None)
            return
        except ChannelError as error:
            self._record_unreadable(None, message_id, error)
            await self._settle_refused(message, error, conversation_id=None)
            return
        conversation_id = request.conversation_id or request.user_id
        inbound = Inbound(
            self.binding,
            user=request.user_id,
            conversation_id=conversation_id,
            text=request.text,
            message_id=message_id,
            user_details=request.user_details,
        )
        failure: ChannelError | None = None
        try:
            reply = await self._hub.handle(inbound)
        except ChannelError as refused:
            failure = refused
        except Exception:
            logger.exception("answering an AMQP message of %s failed", self.binding.binding_id)
            failure = ChannelError("internal", "the answer failed on the way; try again")
        else:
            if not await self._hub.wait_recorded(reply):
                failure = ChannelError("timeout", "answered, but the turn was not recorded in time")
        if failure is not None:
            await self._settle_refused(message, failure, conversation_id=conversation_id)
            return
        await self._publish(message, _answer(reply, conversation_id))
        await message.ack()

    async def _settle_refused(
        self, message: AbstractIncomingMessage, error: ChannelError, *, conversation_id: str | None
    ) -> None:
        if error.code in ANSWERED:
            await self._publish(message, _error(error, conversation_id))
            await message.ack()
        elif error.code in POISON or message.redelivered:
            await self._publish(message, _error(error, conversation_id))
            await message.reject(requeue=False)  # to {queue}.dead
        else:  # transient, first time: once more before it is dead-lettered
            await message.nack(requeue=True)

    async def _publish(self, request: AbstractIncomingMessage, body: dict[str, Any]) -> None:
        if not request.reply_to or self._channel is None:
            return
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                correlation_id=request.correlation_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=request.reply_to,
        )

    def _record_unreadable(
        self, user: str | None, message_id: str | None, error: ChannelError
    ) -> None:
        """Records a message the hub cannot be given (not JSON, no user), as the hub records
        its own refusals: under the body's `user_id` if it had a readable one, in the
        conversation `unknown` otherwise. The message itself is kept in the dead-letter queue."""
        unread = Inbound(
            self.binding, user=user or "", conversation_id=user or "unknown", message_id=message_id
        )
        self._hub.refuse(unread, error)


def _answer(reply: Reply, conversation_id: str) -> dict[str, Any]:
    return {
        "reply": reply.text,
        "fields": reply.fields,
        "session_id": reply.session_id,
        "agent_id": reply.agent_id,
        "conversation_id": conversation_id,
        "turn_index": reply.turn.get("turn_index"),
    }


def _error(error: ChannelError, conversation_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.as_dict(), "conversation_id": conversation_id}
    if error.retry_after_s is not None:
        body["retry_after_s"] = round(error.retry_after_s, 3)
    return body


register(ChannelKind.AMQP, AmqpRunner)
