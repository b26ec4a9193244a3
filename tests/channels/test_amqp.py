"""The AMQP channel end to end on a real RabbitMQ (Debian's, devstack/rabbitmq_server.py, started
once for the module): a backend publishes a request with `reply_to` and `correlation_id` and
gets the agent's answer there; the request is acked only once its turn is recorded; poison
messages are dead-lettered with an error reply and a `message.failed` event; a flood from one
user is answered with rate-limited errors; a message no agent takes is tried twice, then
dead-lettered. The scripted endpoint writes the replies; one request runs on the embedded model.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import psutil
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import (
    CHANNEL_MESSAGES,
    AmqpSettings,
    ChannelBinding,
    ChannelKind,
    RateLimit,
)
from agent_configs.cloudevents import OUTBOX
from agent_configs.egress import EgressPolicy
from channels.service import ChannelService
from devstack import DEFAULT_ROOT, Devstack, Endpoints
from devstack.rabbitmq_server import RabbitMQNode
from tests.channels.conftest import EMBEDDED_TYPE, add_binding, channel_settings
from tests.worker.conftest import RunningWorker
from tests.worker.scripted_llm import REPLY

pytestmark = pytest.mark.services

URL_ENV = "SB_TEST_AMQP_URL"
REPLY_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQNode]:
    """One private RabbitMQ node for the module, stopped whatever the tests did; its stop is
    checked to leave none of its processes (the broker, its epmd) behind."""
    stack = Devstack(DEFAULT_ROOT, run_dir=tmp_path_factory.mktemp("rabbitmq"))
    node: RabbitMQNode | None = None
    try:
        node = stack.start_rabbitmq()
        yield node
    finally:
        stack.stop()
    assert node is not None
    left = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if any(
            str(node.directory) in part or part == str(node.epmd_port)
            for part in p.info["cmdline"] or []
        )
    ]
    assert not left, f"processes of the stopped broker still run: {left}"


@pytest.fixture
async def amqp_service(
    endpoints: Endpoints,
    channels_worker: RunningWorker,
    channels_database: AsyncDatabase,
    broker: RabbitMQNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ChannelService]:
    """The channels service with the broker's URL in URL_ENV, which the egress policy lets go
    to loopback (the package's service fixture has the default policy, which lists no AMQP
    URL variable)."""
    monkeypatch.setenv(URL_ENV, broker.url)
    settings = channel_settings(endpoints, channels_worker, channels_database, tmp_path / "spool")
    service = ChannelService(
        settings, channels_database, EgressPolicy(secrets={URL_ENV: ["loopback"]})
    )
    async with service:
        yield service
    await channels_database["channel_bindings"].delete_many({})


@pytest.fixture
async def producer(broker: RabbitMQNode) -> AsyncIterator[AbstractRobustChannel]:
    """The backend's side: a connection of its own to the broker."""
    connection: AbstractRobustConnection = await aio_pika.connect_robust(broker.url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


def amqp_binding(binding_id: str, **more: Any) -> ChannelBinding:
    target = {"purpose": "support"} if "agent_id" not in more else {}
    queue = f"sb.{binding_id}.{uuid.uuid4().hex[:6]}"
    return ChannelBinding(
        binding_id=binding_id,
        kind=ChannelKind.AMQP,
        amqp=AmqpSettings(url_env=URL_ENV, queue=queue),
        **(target | more),
    )


class Replies:
    """An exclusive, server-named reply queue and what arrives on it, by correlation id."""

    def __init__(self) -> None:
        self.name = ""
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def open(self, channel: AbstractChannel) -> "Replies":
        queue = await channel.declare_queue(exclusive=True)
        self.name = queue.name
        await queue.consume(self._arrived.put, no_ack=True)
        return self

    async def take(self, count: int) -> dict[str, tuple[AbstractIncomingMessage, dict[str, Any]]]:
        got: dict[str, tuple[AbstractIncomingMessage, dict[str, Any]]] = {}
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            while len(got) < count:
                message = await self._arrived.get()
                got[str(message.correlation_id)] = (message, json.loads(message.body))
        return got


async def publish(
    channel: AbstractChannel,
    queue: str,
    body: dict[str, Any] | bytes,
    *,
    reply_to: str | None,
    correlation_id: str,
    message_id: str | None = None,
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    await channel.default_exchange.publish(
        aio_pika.Message(
            raw, reply_to=reply_to, correlation_id=correlation_id, message_id=message_id
        ),
        routing_key=queue,
    )


async def waiting(channel: AbstractRobustChannel, queue: str) -> int:
    """Messages ready on `queue` (a passive declare: it must exist). Not robust: aio-pika's
    robust channel answers a passive declare of a queue it already holds from its cache, with
    the count it had then."""
    declared = await channel.declare_queue(queue, passive=True, robust=False)
    assert declared.declaration_result.message_count is not None
    return declared.declaration_result.message_count


def death_reason(message: AbstractIncomingMessage) -> Any:
    """Why the broker dead-lettered `message` (its first `x-death` entry)."""
    deaths: Any = message.headers["x-death"]
    return deaths[0]["reason"]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{check.__name__} did not come true in time"
        await asyncio.sleep(0.05)


async def stop_consuming(service: ChannelService, database: AsyncDatabase) -> None:
    """The service drops every binding and closes its connections: whatever it had not acked
    goes back to its queue, so an empty queue afterwards means every message was acked."""
    await database["channel_bindings"].delete_many({})
    await service.reload()


async def test_a_request_gets_the_scripted_answer_on_reply_to_and_is_acked_once_recorded(
    amqp_service: ChannelService,
    channels_database: AsyncDatabase,
    producer: AbstractRobustChannel,
) -> None:
    binding = await add_binding(amqp_service, amqp_binding("orders-amqp"))
    assert binding.amqp is not None
    replies = await Replies().open(producer)
    request = {"user_id": "u-42", "text": "Where is my parcel?", "user_details": {"tier": "gold"}}
    queue = binding.amqp.queue
    await publish(
        producer, queue, request, reply_to=replies.name, correlation_id="c-1", message_id="order-9"
    )

    message, answer = (await replies.take(1))["c-1"]
    assert message.content_type == "application/json"
    assert answer["reply"] == REPLY
    assert set(answer["fields"]) >= {"system_response"}
    assert answer["agent_id"] == "support-agent-v1" and answer["session_id"]
    assert answer["conversation_id"] == "u-42", "no conversation_id: one conversation per user"
    assert answer["turn_index"] == 0

    turn = await channels_database["turns"].find_one({"_id": f"{answer['session_id']}:0"})
    assert turn is not None, "the answer is sent only once the turn is recorded"
    await stop_consuming(amqp_service, channels_database)
    assert await waiting(producer, binding.amqp.queue) == 0, "acked: nothing went back"
    assert await waiting(producer, binding.amqp.dead_letter_queue) == 0

    session = await channels_database["sessions"].find_one({"_id": answer["session_id"]})
    assert session is not None and session["user_id"] == "amqp:orders-amqp:u-42"
    assert session["channel"] == {
        "kind": "amqp",
        "binding_id": "orders-amqp",
        "conversation_id": "u-42",
    }

    async def announced() -> bool:
        types = await channels_database[OUTBOX].distinct("type", {"subject": "orders-amqp/u-42"})
        return sorted(types) == ["message.processed", "message.received"]

    await eventually(announced)
    record = await channels_database[CHANNEL_MESSAGES].find_one({"binding_id": "orders-amqp"})
    assert (
        record is not None and record["status"] == "processed" and record["message_id"] == "order-9"
    )


async def test_poison_messages_are_dead_lettered_with_an_error_reply_and_a_failed_event(
    amqp_service: ChannelService,
    channels_database: AsyncDatabase,
    producer: AbstractRobustChannel,
) -> None:
    binding = await add_binding(amqp_service, amqp_binding("poison-amqp", max_message_chars=50))
    assert binding.amqp is not None
    queue = binding.amqp.queue
    replies = await Replies().open(producer)
    await publish(producer, queue, b"not json {", reply_to=replies.name, correlation_id="p-1")
    await publish(producer, queue, {"text": "hi"}, reply_to=replies.name, correlation_id="p-2")
    huge = {"user_id": "u-7", "text": "x" * 51}
    await publish(producer, queue, huge, reply_to=replies.name, correlation_id="p-3")
    await publish(producer, queue, b"\x00\xff", reply_to=None, correlation_id="p-4")

    got = await replies.take(3)
    errors = {cid: body["error"] for cid, (_, body) in got.items()}
    assert errors["p-1"]["code"] == "malformed" and "JSON" in errors["p-1"]["message"]
    assert errors["p-2"]["code"] == "malformed" and errors["p-2"]["message"].startswith("user_id:")
    assert errors["p-3"]["code"] == "too_long" and "50" in errors["p-3"]["message"]

    async def all_dead_lettered() -> bool:
        return await waiting(producer, binding.amqp.dead_letter_queue) == 4

    await eventually(all_dead_lettered)
    dead = await producer.declare_queue(binding.amqp.dead_letter_queue, passive=True, robust=False)
    kept = [await dead.get(timeout=5) for _ in range(4)]
    assert b"not json {" in [m.body for m in kept], "kept as it came, for a person to look at"
    assert all(death_reason(m) == "rejected" for m in kept)

    async def failed_events() -> bool:
        failed = (
            await channels_database[OUTBOX]
            .find({"type": "message.failed", "subject": {"$regex": "^poison-amqp/"}})
            .to_list()
        )
        return sorted(e["data"]["error"]["code"] for e in failed) == [
            "malformed",
            "malformed",
            "malformed",
            "too_long",
        ]

    await eventually(failed_events)
    await stop_consuming(amqp_service, channels_database)
    assert await waiting(producer, queue) == 0


async def test_a_flood_from_one_user_gets_rate_limited_answers_and_is_acked(
    amqp_service: ChannelService,
    channels_database: AsyncDatabase,
    producer: AbstractRobustChannel,
) -> None:
    binding = amqp_binding("flood-amqp", rate_limit=RateLimit(messages=1, window_s=60))
    await add_binding(amqp_service, binding)
    assert binding.amqp is not None
    replies = await Replies().open(producer)
    for i in range(3):
        request = {"user_id": "u-1", "text": f"hello {i}"}
        await publish(
            producer, binding.amqp.queue, request, reply_to=replies.name, correlation_id=f"f-{i}"
        )

    got = await replies.take(3)
    bodies = [body for _, body in got.values()]
    assert sum(1 for b in bodies if b.get("reply") == REPLY) == 1
    limited = [b for b in bodies if "error" in b]
    assert [b["error"]["code"] for b in limited] == ["rate_limited", "rate_limited"]
    assert all(b["retry_after_s"] > 0 and b["conversation_id"] == "u-1" for b in limited)
    await stop_consuming(amqp_service, channels_database)
    assert await waiting(producer, binding.amqp.queue) == 0
    assert await waiting(producer, binding.amqp.dead_letter_queue) == 0, "an answer, not poison"


async def test_a_message_no_agent_takes_is_tried_twice_then_dead_lettered(
    endpoints: Endpoints,
    channels_worker: RunningWorker,
    channels_database: AsyncDatabase,
    broker: RabbitMQNode,
    producer: AbstractRobustChannel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker serves the agent name the service dispatches to, so no agent joins: the
    first failure requeues the message, the redelivery's failure dead-letters it."""
    monkeypatch.setenv(URL_ENV, broker.url)
    settings = channel_settings(endpoints, channels_worker, channels_database, tmp_path / "spool")
    settings = settings.model_copy(
        update={"agent_name": f"nobody-{uuid.uuid4().hex[:6]}", "channels_join_timeout_s": 1.0}
    )
    service = ChannelService(
        settings, channels_database, EgressPolicy(secrets={URL_ENV: ["loopback"]})
    )
    binding = amqp_binding("lonely-amqp")
    assert binding.amqp is not None
    dead_queue = binding.amqp.dead_letter_queue
    async with service:
        try:
            await add_binding(service, binding)
            replies = await Replies().open(producer)
            request = {"user_id": "u-3", "text": "anyone?"}
            await publish(
                producer, binding.amqp.queue, request, reply_to=replies.name, correlation_id="n-1"
            )
            _, body = (await replies.take(1))["n-1"]
            assert body["error"]["code"] == "no_agent"

            async def dead_lettered() -> bool:
                return await waiting(producer, dead_queue) == 1

            await eventually(dead_lettered)
        finally:
            await stop_consuming(service, channels_database)
    records = (
        await channels_database[CHANNEL_MESSAGES].find({"binding_id": "lonely-amqp"}).to_list()
    )
    assert [r["error"]["code"] for r in records] == ["no_agent", "no_agent"], "two tries"
    assert await waiting(producer, binding.amqp.queue) == 0


async def test_a_request_on_the_embedded_model_gets_an_answer(
    amqp_service: ChannelService,
    channels_database: AsyncDatabase,
    producer: AbstractRobustChannel,
) -> None:
    binding = await add_binding(amqp_service, amqp_binding("embedded-amqp", agent_id=EMBEDDED_TYPE))
    assert binding.amqp is not None
    replies = await Replies().open(producer)
    request = {"user_id": "u-9", "conversation_id": "chat-1", "text": "Hello, who are you?"}
    await publish(
        producer, binding.amqp.queue, request, reply_to=replies.name, correlation_id="e-1"
    )
    _, answer = (await replies.take(1))["e-1"]
    assert isinstance(answer["reply"], str) and answer["session_id"]
    assert answer["agent_id"] == EMBEDDED_TYPE
    assert answer["conversation_id"] == "chat-1" and answer["turn_index"] == 0
