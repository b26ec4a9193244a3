"""What a channel adds to a conversation: from "the user has a message" to "the reply is in
hand", through each channel against a direct room client, interleaved in one run.

One Switchboard worker on the simulated model (300 ms to the first token, 50 tokens/s: the
model's time is the same on every path, so what differs is the channel's and the worker's
own cost) serves every path; `python -m channels serve` runs in a process of its own with one
binding per channel, all naming the same agent type (`--agent`, by default the support type
with the bare worker's LLM work: no turn fields, no summary).

- **direct**: a LiveKit frontend (bench/harness.py TimedClient) that joins with the routing
  metadata, waits for the agent and its greeting, types on `lk.chat` and waits for the
  `agent-turn` payload, as the hub itself does; its first text is the reply stream's first
  chunk on `lk.transcription`.
- **http** (the HTTP chat API, JSON): a message POSTed, the JSON answer read.
- **http-sse** (the same, `Accept: text/event-stream`): the first `delta` event against the
  direct client's first text, the `reply` event against its turn payload.
- **telegram** (tests/channels/bot_api.py, a Bot-API-compatible server on loopback the
  service long-polls): a message update pushed, the `sendMessage` of the reply it records.
- **amqp** (a private RabbitMQ, devstack/rabbitmq_server.py): a request published with
  `reply_to`, the reply consumed (the channel acks, and so answers, only once the turn is in
  `turns`).

Cold is a conversation's first message: the room is opened for it (for the direct client
the join, the agent and its greeting; for the HTTP API the open call too). Warm is a later
message in the same conversation. Each round opens one conversation per path and sends
`--messages` messages, message by message across the paths in an order that rotates by
round. A channel whose module is not there (or not registered in channels/kinds.py, or
whose binding does not start) is skipped with a note.

    .venv/bin/python -m bench.channel_overhead [--conversations 8] [--messages 4]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from livekit import rtc  # noqa: E402
from pymongo.asynchronous.database import AsyncDatabase  # noqa: E402

from agent_configs.channels import (  # noqa: E402
    CHANNEL_BINDINGS,
    CHANNEL_MESSAGES,
    ChannelBinding,
    ChannelKind,
)
from agent_configs.database import open_client  # noqa: E402
from bench.harness import (  # noqa: E402
    SAME_WORK_AGENT,
    BenchStack,
    ChannelsProcess,
    LoadWatch,
    TimedClient,
    fmt,
    machine_info,
    print_table,
    ratio,
    start_channels,
    summary,
    tree_cpu_seconds,
    write_results,
)

MESSAGES = (
    "Hello, I have a question about my invoice.",
    "It shows the same charge twice.",
    "Can you refund one of them?",
    "What happens next?",
    "How long will that take?",
    "Thanks, that is all.",
)
KEY_NAME = "bench-backend"
REPLY_TIMEOUT_S = 60.0
IDLE_WINDOW_S = 5.0
IDLE_TTL_S = 120.0
"""Long enough that no conversation closes between two of its messages (a round's other
paths run in between); the HTTP API's and the direct client's close at the end of a round,
the others' when this runs out (their rooms sit idle meanwhile, as a real channel's do)."""


@dataclass
class Timing:
    reply_s: float
    first_text_s: float | None = None
    extra: dict[str, float | str | None] = field(default_factory=dict)


class Conversation(Protocol):
    async def send(self, text: str, cold: bool) -> Timing: ...

    async def close(self) -> None: ...


@dataclass
class Rig:
    """What every path shares: the stack, the bench's database client, the agent type, what
    the channels process needs (bindings, env, the egress policy's secrets)."""

    stack: BenchStack
    database: AsyncDatabase
    agent_id: str
    greets: bool
    bindings: list[ChannelBinding] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, list[str]] = field(default_factory=dict)
    channels: ChannelsProcess | None = None
    token: str = ""

    def binding(self, binding_id: str, kind: ChannelKind, **settings: Any) -> ChannelBinding:
        made = ChannelBinding(
            binding_id=binding_id,
            kind=kind,
            agent_id=self.agent_id,
            idle_ttl_s=IDLE_TTL_S,
            **settings,
        )
        self.bindings.append(made)
        return made


class ChannelPath(Protocol):
    name: str

    async def prepare(self, rig: Rig) -> None: ...

    async def start(self, rig: Rig) -> None: ...

    def conversation(self, rig: Rig, index: int) -> Conversation: ...

    async def stop(self) -> None: ...


# -- direct --------------------------------------------------------------------------------


class DirectClient(TimedClient):
    """TimedClient plus the `agent-turn` payloads and each agent stream's first chunk, on the
    monotonic clock."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.turns: list[float] = []
        self.streams: list[list[float | None]] = []  # [opened, first chunk, done]
        self._readers: set[asyncio.Future[None]] = set()
        self.room.on("data_received", self._on_data)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic == "agent-turn":
            self.turns.append(time.monotonic())
            self._changed.set()

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        entry: list[float | None] = [time.monotonic(), None, None]
        self.streams.append(entry)

        async def read() -> None:
            try:
                async for chunk in reader:
                    if entry[1] is None and chunk:
                        entry[1] = time.monotonic()
            except rtc.StreamError:
                pass
            entry[2] = time.monotonic()
            self._changed.set()

        reading = asyncio.ensure_future(read())
        self._readers.add(reading)
        reading.add_done_callback(self._readers.discard)

    async def until(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while not (result := condition()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"direct: no {what} in {REPLY_TIMEOUT_S:.0f} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), 0.5)
            except TimeoutError:
                pass
        return result

    def agent_attributes(self) -> dict[str, str]:
        for participant in self.room.remote_participants.values():
            if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return dict(participant.attributes)
        return {}

    async def wait_agent(self) -> None:
        """The agent's session (its type attribute) and, when it greets, the whole greeting."""
        attributes = await self.until(
            lambda: (a := self.agent_attributes()).get("switchboard.agent_id") and a, "agent"
        )
        if attributes.get("switchboard.greets") == "true":
            await self.until(lambda: self.streams and self.streams[0][2] is not None, "greeting")

    async def ask(self, text: str) -> tuple[float | None, float]:
        """(first chunk of the reply, the turn payload), monotonic."""
        turns, streams = len(self.turns), len(self.streams)
        await asyncio.wait_for(self.room.local_participant.send_text(text, topic="lk.chat"), 10)
        await self.until(lambda: len(self.turns) > turns, "agent-turn payload")
        first = next((s[1] for s in self.streams[streams:] if s[1] is not None), None)
        return first, self.turns[turns]


class DirectConversation:
    def __init__(self, rig: Rig, index: int) -> None:
        assert rig.stack.endpoints is not None
        metadata = {
            "agent_id": rig.agent_id,
            "user_id": f"direct:bench:{index}",
            "modality": "text",
        }
        self.client = DirectClient(
            rig.stack.endpoints,
            rig.stack.workers["switchboard"].agent_name,
            metadata,
            f"direct-user-{index}",
        )

    async def send(self, text: str, cold: bool) -> Timing:
        started = time.monotonic()
        if cold:
            await self.client.join(REPLY_TIMEOUT_S)
            await self.client.wait_agent()
        first, turn = await self.client.ask(text)
        return Timing(turn - started, None if first is None else first - started)

    async def close(self) -> None:
        await self.client.leave()


class DirectPath:
    name = "direct"

    async def prepare(self, rig: Rig) -> None:
        return None

    async def start(self, rig: Rig) -> None:
        return None

    def conversation(self, rig: Rig, index: int) -> Conversation:
        return DirectConversation(rig, index)

    async def stop(self) -> None:
        return None


# -- the HTTP chat API ---------------------------------------------------------------------


class HttpPath:
    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.name = "http-sse" if stream else "http"
        self.binding_id = f"bench-{self.name}"
        self.http: httpx.AsyncClient | None = None

    async def prepare(self, rig: Rig) -> None:
        from agent_configs.channels import HttpChatSettings

        rig.binding(self.binding_id, ChannelKind.HTTP, http=HttpChatSettings(keys=[KEY_NAME]))

    async def start(self, rig: Rig) -> None:
        assert rig.channels is not None
        # one client, its connection kept alive, as a backend's
        self.http = httpx.AsyncClient(
            base_url=f"{rig.channels.url}/v1/channels/{self.binding_id}",
            headers={"Authorization": f"Bearer {rig.token}"},
            timeout=REPLY_TIMEOUT_S,
        )

    def conversation(self, rig: Rig, index: int) -> Conversation:
        assert self.http is not None
        return HttpConversation(self.http, self.stream, f"user-{index}")

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()


class HttpConversation:
    def __init__(self, http: httpx.AsyncClient, stream: bool, user: str) -> None:
        self.http = http
        self.stream = stream
        self.user = user
        self.conversation_id: str | None = None
        self.session_id: str | None = None

    async def send(self, text: str, cold: bool) -> Timing:
        started = time.monotonic()
        extra: dict[str, float | str | None] = {}
        if cold:
            opened = await self.http.post("/conversations", json={"user_id": self.user})
            opened.raise_for_status()
            self.conversation_id = opened.json()["conversation_id"]
            extra["open_ms"] = (time.monotonic() - started) * 1000
        path = f"/conversations/{self.conversation_id}/messages"
        if not self.stream:
            answer = await self.http.post(path, json={"text": text})
            done = time.monotonic()
            if answer.status_code != 200:
                raise RuntimeError(f"http: {answer.status_code} {answer.text[:300]}")
            self._check(answer.json(), cold)
            return Timing(done - started, None, extra)
        first: float | None = None
        event = ""
        headers = {"Accept": "text/event-stream"}
        async with self.http.stream("POST", path, json={"text": text}, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"http-sse: {response.status_code}")
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    if event == "delta" and first is None:
                        first = time.monotonic()
                    elif event == "reply":
                        done = time.monotonic()
                        self._check(json.loads(line.partition(":")[2]), cold)
                        return Timing(
                            done - started, None if first is None else first - started, extra
                        )
                    elif event == "error":
                        raise RuntimeError(f"http-sse: {line}")
        raise RuntimeError("http-sse: the stream ended without a reply event")

    def _check(self, answer: dict[str, Any], cold: bool) -> None:
        """A warm message must be answered by the conversation's session, not a new one."""
        if cold:
            self.session_id = answer.get("session_id")
        elif answer.get("session_id") != self.session_id or answer.get("greeting"):
            raise RuntimeError("http: a warm message opened a new session")

    async def close(self) -> None:
        if self.conversation_id is not None:
            await self.http.delete(f"/conversations/{self.conversation_id}")


# -- Telegram ------------------------------------------------------------------------------

TELEGRAM_TOKEN_ENV = "BENCH_TELEGRAM_TOKEN"


class TelegramPath:
    name = "telegram"

    def __init__(self) -> None:
        from tests.channels.bot_api import BotApiServer

        self.server = BotApiServer(f"4242:{uuid.uuid4().hex}")

    async def prepare(self, rig: Rig) -> None:
        from agent_configs.channels import TelegramSettings

        await self.server.start()
        rig.env[TELEGRAM_TOKEN_ENV] = self.server.token
        rig.secrets[TELEGRAM_TOKEN_ENV] = ["loopback"]
        settings = TelegramSettings(token_env=TELEGRAM_TOKEN_ENV, api_base_url=self.server.url)
        rig.binding("bench-telegram", ChannelKind.TELEGRAM, telegram=settings)

    async def start(self, rig: Rig) -> None:
        return None

    def conversation(self, rig: Rig, index: int) -> Conversation:
        return TelegramConversation(self.server, 700_000 + index, 500_000 + index, rig.greets)

    async def stop(self) -> None:
        await self.server.stop()


class TelegramConversation:
    def __init__(self, server: Any, chat: int, user: int, greets: bool) -> None:
        self.server = server
        self.chat = chat
        self.user = user
        self.greets = greets

    async def send(self, text: str, cold: bool) -> Timing:
        server, chat = self.server, self.chat
        # the first message's answer is the greeting, then the reply: two messages
        expected = len(server.said(chat)) + (2 if cold and self.greets else 1)
        typing_before = len(server.called("sendChatAction", chat))
        started = time.monotonic()
        server.push(server.message(chat, self.user, text=text))
        await server.wait_for(lambda s: len(s.said(chat)) >= expected, REPLY_TIMEOUT_S)
        sent = server.called("sendMessage", chat)[expected - 1]
        typing = server.called("sendChatAction", chat)[typing_before:]
        extra: dict[str, float | str | None] = {
            "typing_ms": (typing[0].at - started) * 1000 if typing else None
        }
        return Timing(sent.at - started, None, extra)

    async def close(self) -> None:
        return None  # a chat is never closed: its room closes after the binding's idle_ttl_s


# -- AMQP ----------------------------------------------------------------------------------

AMQP_URL_ENV = "BENCH_AMQP_URL"


class AmqpPath:
    name = "amqp"
    queue = "bench.channel_overhead"

    def __init__(self) -> None:
        self.connection: Any = None
        self.channel: Any = None
        self.reply_to = ""
        self.waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.url = ""

    async def prepare(self, rig: Rig) -> None:
        from agent_configs.channels import AmqpSettings

        node = await asyncio.to_thread(rig.stack.start_rabbitmq)
        self.url = node.url
        rig.env[AMQP_URL_ENV] = node.url
        rig.secrets[AMQP_URL_ENV] = ["loopback"]
        settings = AmqpSettings(url_env=AMQP_URL_ENV, queue=self.queue)
        rig.binding("bench-amqp", ChannelKind.AMQP, amqp=settings)

    async def start(self, rig: Rig) -> None:
        import aio_pika

        self.connection = await aio_pika.connect_robust(self.url)
        self.channel = await self.connection.channel()
        replies = await self.channel.declare_queue(exclusive=True)
        self.reply_to = replies.name
        await replies.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: Any) -> None:
        arrived = time.monotonic()
        waiting = self.waiting.pop(message.correlation_id or "", None)
        if waiting is not None and not waiting.done():
            waiting.set_result((arrived, json.loads(message.body)))

    async def ask(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        import aio_pika

        correlation = uuid.uuid4().hex
        future: asyncio.Future[tuple[float, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiting[correlation] = future
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                correlation_id=correlation,
                reply_to=self.reply_to,
            ),
            routing_key=self.queue,
        )
        return await asyncio.wait_for(future, REPLY_TIMEOUT_S)

    def conversation(self, rig: Rig, index: int) -> Conversation:
        return AmqpConversation(self, f"user-{index}", f"conversation-{index}")

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class AmqpConversation:
    def __init__(self, path: AmqpPath, user: str, conversation_id: str) -> None:
        self.path = path
        self.user = user
        self.conversation_id = conversation_id

    async def send(self, text: str, cold: bool) -> Timing:
        started = time.monotonic()
        arrived, answer = await self.path.ask(
            {"user_id": self.user, "conversation_id": self.conversation_id, "text": text}
        )
        if "error" in answer:
            raise RuntimeError(f"amqp: {answer['error']}")
        return Timing(arrived - started)

    async def close(self) -> None:
        return None  # its room closes after the binding's idle_ttl_s


# -- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    name: str
    kind: ChannelKind | None
    """The binding kind the channels service must have registered (None: the direct client)."""
    requires: tuple[str, ...]
    """Modules that must import (the channel's own, the bench's stand-ins)."""
    make: Callable[[], ChannelPath]


CHANNELS: tuple[Channel, ...] = (
    Channel("direct", None, (), DirectPath),
    Channel("http", ChannelKind.HTTP, ("channels.http_api",), lambda: HttpPath(stream=False)),
    Channel("http-sse", ChannelKind.HTTP, ("channels.http_api",), lambda: HttpPath(stream=True)),
    Channel(
        "telegram",
        ChannelKind.TELEGRAM,
        ("channels.telegram", "tests.channels.bot_api"),
        TelegramPath,
    ),
    Channel(
        "amqp",
        ChannelKind.AMQP,
        ("channels.amqp", "aio_pika", "devstack.rabbitmq_server"),
        AmqpPath,
    ),
)


def missing_reason(channel: Channel) -> str | None:
    """Why this channel cannot be measured here (None: it can)."""
    for module in channel.requires:
        try:
            importlib.import_module(module)
        except Exception as exc:  # absent, or half-written by someone at work on it
            return f"{module} does not import ({type(exc).__name__}: {exc})"
    if channel.kind is not None:
        from channels import kinds  # noqa: F401  (what the service registers)
        from channels.registry import channel_type

        if channel_type(channel.kind) is None:
            return f"channels/kinds.py registers no {channel.kind} channel"
    return None


def rotated(names: list[str], by: int) -> list[str]:
    """The paths' order in round `by`: each goes first in turn (direct included)."""
    shift = by % len(names) if names else 0
    return names[shift:] + names[:shift]


# -- the run -------------------------------------------------------------------------------


async def wait_llm_idle(stack: BenchStack, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and stack.llm_busy() not in (0, None):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    from admin_api.auth import KeyRing, Role
    from agent_configs.store import ConfigStore

    assert stack.endpoints is not None
    client = open_client(stack.endpoints.mongo_uri)
    database = client[stack.database_name]
    config = await ConfigStore(database).get(args.agent)
    rig = Rig(stack, database, args.agent, greets=bool(config.greeting))
    _, rig.token = await KeyRing(database).create(KEY_NAME, Role.TOKEN)
    notes: list[str] = []
    paths: list[ChannelPath] = []
    for channel in CHANNELS:
        if args.channels and channel.name not in args.channels:
            continue
        reason = missing_reason(channel)
        if reason is not None:
            notes.append(f"{channel.name}: skipped: {reason}")
            print(f"note: {channel.name} skipped: {reason}")
            continue
        path = channel.make()
        await path.prepare(rig)
        paths.append(path)
    for binding in rig.bindings:
        await database[CHANNEL_BINDINGS].replace_one(
            {"_id": binding.binding_id}, binding.document(), upsert=True
        )
    env = rig.env | {"EGRESS_SECRETS": json.dumps(rig.secrets)}
    rig.channels = await asyncio.to_thread(start_channels, stack, env)
    channels = rig.channels
    try:
        missing = await asyncio.to_thread(
            channels.wait_bindings, [b.binding_id for b in rig.bindings]
        )
        for binding_id in missing:
            status = await database["channel_status"].find_one({"_id": binding_id})
            reason = f"its binding did not start: {status}"
            dropped = [
                p for p in paths if getattr(p, "binding_id", f"bench-{p.name}") == binding_id
            ]
            for path in dropped:
                notes.append(f"{path.name}: skipped: {reason}")
                print(f"note: {path.name} skipped: {reason}")
                paths.remove(path)
        for path in paths:
            await path.start(rig)
        print(
            f"paths: {', '.join(p.name for p in paths)}; {args.conversations} conversations "
            f"x {args.messages} messages each; agent {args.agent}"
        )
        # what the service costs doing nothing (its loops, the Telegram long poll), taken
        # off its CPU over the rounds
        idle_before, idle_started = tree_cpu_seconds(channels.pid), time.monotonic()
        await asyncio.sleep(IDLE_WINDOW_S)
        idle_cores = _cpu_between(idle_before, tree_cpu_seconds(channels.pid)) / (
            time.monotonic() - idle_started
        )
        samples: list[dict[str, Any]] = []
        cpu_before, rounds_started = tree_cpu_seconds(channels.pid), time.monotonic()
        by_name = {p.name: p for p in paths}
        for round_index in range(args.conversations):
            order = rotated([p.name for p in paths], round_index)
            conversations = {n: by_name[n].conversation(rig, round_index) for n in order}
            failed: set[str] = set()
            for message in range(args.messages):
                text = MESSAGES[message % len(MESSAGES)]
                for name in order:
                    if name in failed:
                        continue
                    sample: dict[str, Any] = {
                        "path": name,
                        "round": round_index,
                        "message": message,
                        "phase": "cold" if message == 0 else "warm",
                    }
                    bench_cpu, service_cpu = time.process_time(), _cpu(channels.pid)
                    try:
                        timing = await conversations[name].send(text, message == 0)
                    except Exception as exc:
                        failed.add(name)
                        sample["error"] = f"{type(exc).__name__}: {exc}"
                        print(f"  {name} round {round_index} message {message}: {sample['error']}")
                    else:
                        sample["reply_ms"] = timing.reply_s * 1000
                        sample["first_text_ms"] = (
                            None if timing.first_text_s is None else timing.first_text_s * 1000
                        )
                        sample |= timing.extra
                        # CPU while this message was answered: this process (the direct
                        # client, or each channel's client side: httpx, aio-pika, the Bot API
                        # server) and the channels service (every room it holds, so rooms idle
                        # in their TTL count too)
                        sample["bench_cpu_ms"] = (time.process_time() - bench_cpu) * 1000
                        sample["channels_cpu_ms"] = (_cpu(channels.pid) - service_cpu) * 1000
                    samples.append(sample)
                    await wait_llm_idle(stack)
            for conversation in conversations.values():
                try:
                    await conversation.close()
                except Exception as exc:
                    print(f"  (closing failed: {exc!r})")
            done = [s for s in samples if s["round"] == round_index and "reply_ms" in s]
            print(
                f"round {round_index + 1}/{args.conversations}: "
                + ", ".join(
                    f"{n} {statistics.median(s['reply_ms'] for s in done if s['path'] == n):.0f}"
                    for n in order
                    if any(s["path"] == n for s in done)
                )
                + " ms (median reply)"
            )
        channels_cpu_s = _cpu_between(cpu_before, tree_cpu_seconds(channels.pid))
        await asyncio.sleep(2.0)  # the hub's records go through its buffered writer
        hub = await hub_times(database, rig.bindings)
        busy_cpu_s = channels_cpu_s - idle_cores * (time.monotonic() - rounds_started)
        handled = sum(1 for s in samples if s["path"] != "direct" and "reply_ms" in s)
        return {
            "paths": [p.name for p in paths],
            "notes": notes,
            "samples": samples,
            "hub": hub,
            "channels_service": {
                "cpu_s": channels_cpu_s,
                "idle_cores": idle_cores,
                "messages": handled,
                "cpu_ms_per_message": busy_cpu_s * 1000 / handled if handled else None,
            },
        }
    finally:
        for path in paths:
            try:
                await path.stop()
            except Exception as exc:
                print(f"(stopping {path.name} failed: {exc!r})", file=sys.stderr)
        channels.stop()
        await client.close()


async def hub_times(
    database: AsyncDatabase, bindings: list[ChannelBinding]
) -> dict[str, dict[str, Any]]:
    """Per path and phase, the hub's own `reply_ms` (channel_messages: from `Hub.handle` taking
    the message to the agent's answer): the rest of the time at the client is the channel's
    transport (HTTP, the Bot API, the broker and, for AMQP, the wait for the turn's record)."""
    found: dict[str, dict[str, Any]] = {}
    for binding in bindings:
        by_conversation: dict[str, list[dict[str, Any]]] = {}
        query = {"binding_id": binding.binding_id, "status": "processed"}
        async for record in database[CHANNEL_MESSAGES].find(query):
            by_conversation.setdefault(record["conversation_id"], []).append(record)
        cold: list[float] = []
        warm: list[float] = []
        for records in by_conversation.values():
            records.sort(key=lambda r: r["at"])
            cold.append(records[0]["reply_ms"])
            warm += [r["reply_ms"] for r in records[1:]]
        name = binding.binding_id.removeprefix("bench-")
        found[name] = {"cold": summary(cold), "warm": summary(warm)}
    return found


def analyse(samples: list[dict[str, Any]], paths: list[str]) -> list[dict[str, Any]]:
    """Per path and phase: the reply (and, for SSE, the first delta) against the direct
    client's turn payload (first text), p50/p95, their differences and ratios, and the median
    of the paired differences (the same round and message)."""
    rows = []
    direct = {
        (s["round"], s["message"]): s for s in samples if s["path"] == "direct" and "reply_ms" in s
    }
    measures = [("reply", "reply_ms", "reply_ms")]
    for path in paths:
        if path == "direct":
            continue
        extra = [("first text", "first_text_ms", "first_text_ms")] if path == "http-sse" else []
        for phase in ("cold", "warm"):
            for what, ours_key, base_key in measures + extra:
                ours = [
                    s
                    for s in samples
                    if s["path"] == path and s["phase"] == phase and ours_key in s
                ]
                ours = [s for s in ours if s.get(ours_key) is not None]
                theirs = [
                    s[base_key]
                    for s in direct.values()
                    if s["phase"] == phase and s.get(base_key) is not None
                ]
                values = [s[ours_key] for s in ours]
                paired = [
                    s[ours_key] - direct[(s["round"], s["message"])][base_key]
                    for s in ours
                    if (s["round"], s["message"]) in direct
                    and direct[(s["round"], s["message"])].get(base_key) is not None
                ]
                mine, base = summary(values), summary(theirs)
                rows.append(
                    {
                        "path": path,
                        "phase": phase,
                        "measure": what,
                        "ours": mine,
                        "direct": base,
                        "diff_p50_ms": _diff(mine["p50"], base["p50"]),
                        "diff_p95_ms": _diff(mine["p95"], base["p95"]),
                        "paired_diff_median_ms": statistics.median(paired) if paired else None,
                        "ratio_p50": ratio(mine["p50"], base["p50"]),
                        "ratio_p95": ratio(mine["p95"], base["p95"]),
                    }
                )
    return rows


def _cpu(pid: int) -> float:
    return sum(tree_cpu_seconds(pid).values())


def cpu_rows(samples: list[dict[str, Any]], paths: list[str]) -> list[dict[str, Any]]:
    """Per path and phase, the mean CPU per message (means: /proc counts in 10 ms ticks) of
    the client side (this process) and of the channels service, and the total against the
    direct client's."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        for phase in ("cold", "warm"):
            chosen = [
                s
                for s in samples
                if s["path"] == path and s["phase"] == phase and "bench_cpu_ms" in s
            ]
            if not chosen:
                continue
            client = statistics.fmean(s["bench_cpu_ms"] for s in chosen)
            service = statistics.fmean(s["channels_cpu_ms"] for s in chosen)
            rows.append(
                {
                    "path": path,
                    "phase": phase,
                    "n": len(chosen),
                    "client_cpu_ms": client,
                    "channels_cpu_ms": service,
                    "total_cpu_ms": client + service,
                }
            )
    direct = {r["phase"]: r["total_cpu_ms"] for r in rows if r["path"] == "direct"}
    for row in rows:
        row["ratio_to_direct"] = ratio(row["total_cpu_ms"], direct.get(row["phase"]))
    return rows


def _cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _diff(ours: float | int | None, base: float | int | None) -> float | None:
    return None if ours is None or base is None else float(ours) - float(base)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=8, help="rounds: one per path each")
    parser.add_argument("--messages", type=int, default=4, help="messages per conversation")
    parser.add_argument(
        "--channels",
        nargs="*",
        default=[],
        help=f"only these paths (of {', '.join(c.name for c in CHANNELS)}; direct is the baseline)",
    )
    parser.add_argument("--agent", default=SAME_WORK_AGENT, help="the agent type every path uses")
    parser.add_argument("--ttft-ms", type=float, default=300.0)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    args = parser.parse_args()
    if args.channels and "direct" not in args.channels:
        args.channels.append("direct")
    info = machine_info()
    started = time.time()
    with (
        LoadWatch() as load,
        BenchStack(
            llm="simulated",
            bare=False,
            simulated_ttft_ms=args.ttft_ms,
            simulated_tokens_per_s=args.tokens_per_s,
        ) as stack,
    ):
        print(f"run directory: {stack.run_dir}")
        result = asyncio.run(measure(stack, args))
    rows = analyse(result["samples"], result["paths"])
    table = []
    for row in rows:
        ours, base = row["ours"], row["direct"]
        label = f"{row['path']} {row['measure']}" + (
            " (vs direct first text)" if row["measure"] == "first text" else ""
        )
        table.append(
            [
                f"{label}, {row['phase']}",
                str(ours["n"]),
                f"{fmt(ours['p50'], digits=0)} / {fmt(ours['p95'], digits=0)}",
                f"{fmt(base['p50'], digits=0)} / {fmt(base['p95'], digits=0)}",
                f"{fmt(row['diff_p50_ms'], digits=0)} / {fmt(row['diff_p95_ms'], digits=0)}",
                fmt(row["paired_diff_median_ms"], digits=0),
                f"{fmt(row['ratio_p50'], 'x', 2)} / {fmt(row['ratio_p95'], 'x', 2)}",
            ]
        )
    print_table(
        "to the reply in hand, ms (direct: the LiveKit room client, same run)",
        ["path", "n", "p50 / p95", "direct p50 / p95", "diff p50 / p95", "paired diff", "ratio"],
        table,
    )
    hub_rows = []
    for row in rows:
        inside = result["hub"].get(row["path"], {}).get(row["phase"])
        if row["measure"] != "reply" or not inside:
            continue
        hub_rows.append(
            [
                f"{row['path']}, {row['phase']}",
                fmt(inside["p50"], digits=0),
                fmt(row["ours"]["p50"], digits=0),
                fmt(_diff(row["ours"]["p50"], inside["p50"]), digits=0),
            ]
        )
    print_table(
        "the hub's own time (channel_messages.reply_ms) against the reply at the client, p50 ms",
        ["path, phase", "hub", "client", "transport"],
        hub_rows,
    )
    cpu = cpu_rows(result["samples"], result["paths"])
    print_table(
        "CPU per message, ms (mean): this process (the direct client, or the channel's client "
        "side) + the channels service",
        ["path, phase", "n", "client", "channels service", "total", "vs direct"],
        [
            [
                f"{r['path']}, {r['phase']}",
                str(r["n"]),
                fmt(r["client_cpu_ms"], digits=1),
                fmt(r["channels_cpu_ms"], digits=1),
                fmt(r["total_cpu_ms"], digits=1),
                fmt(r["ratio_to_direct"], "x", 2),
            ]
            for r in cpu
        ],
    )
    errors = [s for s in result["samples"] if "error" in s]
    service = result["channels_service"]
    print(
        f"\nchannels service CPU: {fmt(service['cpu_ms_per_message'], ' ms', 1)} per message "
        f"over its idle {fmt(service['idle_cores'] * 1000, ' ms/s', 1)} "
        f"({service['messages']} messages); errors: {len(errors)}"
    )
    for note in result["notes"]:
        print(f"note: {note}")
    print(load.describe(info["cpus"]))
    path = write_results(
        "channel_overhead",
        {
            "machine": info,
            "args": vars(args),
            "duration_s": time.time() - started,
            "load": load.report(),
            "analysis": rows,
            "cpu": cpu,
            **result,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
