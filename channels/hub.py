"""The conversation core every channel shares: a message in, the agent's answer out.

A channel (Telegram, the HTTP chat API, AMQP) turns what it receives into an `Inbound` and
calls `Hub.handle`; everything else is here, once:

- refusals before anything is sent: a disabled binding, an empty or malformed message, one
  longer than the binding's `max_message_chars`, a user over the binding's rate limit;
- the conversation's room: opened on its first message (LiveKit dispatches the worker, which
  routes on the binding's metadata), reused while messages keep coming, one turn at a time
  (a second message waits for the first one's answer), opened again when the agent left (its
  session ended) and closed after `idle_ttl_s` without a message. A closed conversation holds
  nothing here: the next message opens a new session, which remembers the earlier ones
  through per-user memory (the trusted `user_id` is the same);
- the record of each message (`channel_messages`: who, where, status, how long; never the
  text) and its `message.received` / `message.processed` / `message.failed` CloudEvents,
  both through the no-loss writer.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import (
    CHANNEL_KEY,
    CHANNEL_MESSAGES,
    CHANNELS_SOURCE,
    ChannelBinding,
)
from agent_configs.cloudevents import OUTBOX, EventType, message_data, new_event, outbox_record
from agent_configs.writer import NoLossWriter, Record
from channels.limits import SlidingWindow
from channels.room import LiveKitAccess, RoomConversation, RoomGone

logger = logging.getLogger("switchboard.channels")

TURNS = "turns"
REFUSALS = frozenset(
    {"rate_limited", "too_long", "disabled", "malformed", "unknown_chat", "unsupported"}
)
"""Error codes of a message refused before anything was sent (status `refused`); the others
(`timeout`, `no_agent`, `internal`) failed on the way (status `failed`)."""


class ChannelError(Exception):
    """Why a message got no answer; `code` is one of contract G's (README: Channels)."""

    def __init__(self, code: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def refused(self) -> bool:
        return self.code in REFUSALS

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Inbound:
    binding: ChannelBinding
    user: str
    """The channel's own id of the user (trusted: the session's `user_id` is made from it)."""
    conversation_id: str
    text: str | None = None
    audio: tuple[bytes, int] | None = None
    """A voice note: 16-bit mono PCM and its sample rate (48 kHz keeps one track per room)."""
    message_id: str | None = None
    user_details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    text: str
    fields: dict[str, Any] | None
    turn: dict[str, Any]
    session_id: str | None
    agent_id: str | None
    greeting: str | None = None
    """The agent's greeting, when this message opened the conversation's session."""


@dataclass
class _Conversation:
    binding: ChannelBinding
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    room: RoomConversation | None = None
    voice: bool = False
    last_at: float = field(default_factory=time.monotonic)
    busy: int = 0


Delta = Callable[[str], Awaitable[None]]


class Hub:
    def __init__(
        self,
        access: LiveKitAccess,
        database: AsyncDatabase,
        *,
        spool_dir: Path,
        reply_timeout_s: float = 120.0,
        join_timeout_s: float = 30.0,
        sweep_interval_s: float = 1.0,
    ) -> None:
        self._access = access
        self._database = database
        self._writer = NoLossWriter(database, spool_dir, collections={CHANNEL_MESSAGES, OUTBOX})
        self._reply_timeout_s = reply_timeout_s
        self._join_timeout_s = join_timeout_s
        self._sweep_interval_s = sweep_interval_s
        self._conversations: dict[tuple[str, str], _Conversation] = {}
        self._limits = SlidingWindow()
        self._longest_window_s = 60.0
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._writer.replay()
        await self._database[CHANNEL_MESSAGES].create_index([("binding_id", 1), ("at", -1)])
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="channels.sweep")

    def open_conversations(self) -> int:
        return sum(1 for c in self._conversations.values() if c.room is not None)

    def tracked_users(self) -> int:
        return len(self._limits)

    # -- a message ----------------------------------------------------------------------

    async def handle(self, inbound: Inbound, *, on_delta: Delta | None = None) -> Reply:
        """The agent's answer to `inbound`, or ChannelError saying why there is none; either
        way the message is recorded and announced."""
        binding = inbound.binding
        user_id = binding.trusted_user_id(inbound.user)
        message_id = inbound.message_id or uuid.uuid4().hex
        event = _Announcer(self._writer, binding, inbound, user_id, message_id)
        event.emit(EventType.MESSAGE_RECEIVED)
        started = time.monotonic()
        try:
            self._admit(inbound)
            reply = await self._answer(inbound, user_id, on_delta)
        except ChannelError as error:
            self._record(inbound, user_id, message_id, error=error)
            event.emit(EventType.MESSAGE_FAILED, error=error.as_dict())
            raise
        except Exception as exc:  # a bug or a LiveKit error mid-turn: recorded, then raised as one
            logger.exception("message %s of %s failed", message_id, binding.binding_id)
            internal = ChannelError(
                "internal", f"the message could not be answered: {type(exc).__name__}"
            )
            self._record(inbound, user_id, message_id, error=internal)
            event.emit(EventType.MESSAGE_FAILED, error=internal.as_dict())
            raise internal from exc
        reply_ms = round((time.monotonic() - started) * 1000)
        self._record(inbound, user_id, message_id, reply=reply, reply_ms=reply_ms)
        event.emit(
            EventType.MESSAGE_PROCESSED,
            session_id=reply.session_id,
            agent_id=reply.agent_id,
            reply_ms=reply_ms,
        )
        return reply

    def refuse(self, inbound: Inbound, error: ChannelError) -> None:
        """Records a message the channel refused itself before asking the hub (a sticker, a
        malformed queue message), as the hub records its own refusals: `channel_messages` and
        `message.received` then `message.failed`."""
        binding = inbound.binding
        user_id = binding.trusted_user_id(inbound.user)
        message_id = inbound.message_id or uuid.uuid4().hex
        event = _Announcer(self._writer, binding, inbound, user_id, message_id)
        event.emit(EventType.MESSAGE_RECEIVED)
        self._record(inbound, user_id, message_id, error=error)
        event.emit(EventType.MESSAGE_FAILED, error=error.as_dict())

    def _admit(self, inbound: Inbound) -> None:
        binding = inbound.binding
        if not binding.enabled:
            raise ChannelError("disabled", f"the channel {binding.binding_id} is disabled")
        if inbound.audio is None and not (inbound.text or "").strip():
            raise ChannelError("malformed", "text: the message has no text (nor a voice note)")
        if inbound.text is not None and len(inbound.text) > binding.max_message_chars:
            raise ChannelError(
                "too_long",
                f"text: {len(inbound.text)} characters; this channel takes at most "
                f"{binding.max_message_chars}",
            )
        limit = binding.rate_limit
        self._longest_window_s = max(self._longest_window_s, limit.window_s)
        wait = self._limits.admit(
            (binding.binding_id, inbound.user), limit.messages, limit.window_s
        )
        if wait is not None:
            raise ChannelError(
                "rate_limited",
                f"more than {limit.messages} messages in {limit.window_s:g} s; try again in "
                f"{max(1, round(wait))} s",
                retry_after_s=wait,
            )

    async def _answer(self, inbound: Inbound, user_id: str, on_delta: Delta | None) -> Reply:
        key = (inbound.binding.binding_id, inbound.conversation_id)
        conversation = self._conversations.get(key)
        if conversation is None:
            conversation = self._conversations[key] = _Conversation(inbound.binding)
        conversation.binding = inbound.binding
        conversation.busy += 1
        try:
            async with conversation.lock:
                greeting = await self._ensure_room(conversation, inbound, user_id)
                room = conversation.room
                assert room is not None
                try:
                    answer = await room.ask(
                        text=inbound.text,
                        audio=inbound.audio,
                        on_delta=on_delta,
                        timeout_s=self._reply_timeout_s,
                    )
                except TimeoutError as exc:
                    raise ChannelError("timeout", str(exc)) from None
                except RoomGone as exc:
                    await self._close_room(conversation)
                    raise ChannelError("no_agent", str(exc)) from None
                except Exception:  # the room is in an unknown state: the next message opens anew
                    await self._close_room(conversation)
                    raise
                finally:
                    conversation.last_at = time.monotonic()
        finally:
            conversation.busy -= 1
        return Reply(
            text=answer.text,
            fields=answer.turn.get("fields"),
            turn=answer.turn,
            session_id=answer.turn.get("session_id") or room.session_id,
            agent_id=answer.turn.get("agent_id") or room.agent_id,
            greeting=greeting,
        )

    async def _ensure_room(
        self, conversation: _Conversation, inbound: Inbound, user_id: str
    ) -> str | None:
        """The conversation's room, opened when there is none, the agent left, or a voice note
        comes to a text room (a text conversation never pays for speech recognition)."""
        voice = inbound.audio is not None
        room = conversation.room
        if room is not None and (room.gone or (voice and not conversation.voice)):
            await self._close_room(conversation)
        if conversation.room is not None:
            return None
        binding = inbound.binding
        job: dict[str, Any] = binding.routing_metadata() | {
            "user_id": user_id,
            "modality": "voice_in" if voice else "text",
            CHANNEL_KEY: binding.channel_mark(inbound.conversation_id),
        }
        if inbound.user_details:
            job["user_details"] = {**job.get("user_details", {}), **inbound.user_details}
        room = RoomConversation(
            self._access,
            room_name=f"{binding.binding_id}-{uuid.uuid4().hex[:12]}",
            identity=f"{binding.kind}-user",
            job=job,
        )
        try:
            await room.open(self._join_timeout_s)
        except (TimeoutError, RoomGone) as exc:
            await room.close()
            raise ChannelError("no_agent", f"no agent took the conversation: {exc}") from None
        except Exception as exc:  # LiveKit unreachable, a refused token
            await room.close()
            logger.warning("could not open a room for %s: %s", binding.binding_id, exc)
            raise ChannelError("no_agent", "could not reach the agents' server") from None
        conversation.room, conversation.voice = room, voice
        return room.greeting

    async def _close_room(self, conversation: _Conversation) -> None:
        room, conversation.room = conversation.room, None
        if room is not None:
            await room.close()

    async def close(self, binding_id: str, conversation_id: str) -> bool:
        """Ends a conversation's session now (the HTTP API's close); False when none is open."""
        conversation = self._conversations.pop((binding_id, conversation_id), None)
        if conversation is None or conversation.room is None:
            return False
        async with conversation.lock:
            await self._close_room(conversation)
        return True

    async def wait_recorded(self, reply: Reply, timeout_s: float = 30.0) -> bool:
        """Whether the turn of `reply` is in `turns` (the worker writes it through its no-loss
        writer as it publishes the turn): what the AMQP channel waits for before its ack."""
        index = reply.turn.get("turn_index")
        if reply.session_id is None or index is None:
            return False
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            found = await self._database[TURNS].find_one(
                {"_id": f"{reply.session_id}:{index}"}, {"_id": 1}
            )
            if found is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(delay)  # polled: change streams are not in FerretDB v1
            delay = min(delay * 2, 0.5)

    # -- idle conversations --------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            try:
                await self.sweep()
            except Exception:  # never let the sweeper die
                logger.exception("sweeping idle conversations failed")

    async def sweep(self) -> None:
        """Closes the conversations idle longer than their binding's `idle_ttl_s` and forgets
        the users whose rate windows are over."""
        now = time.monotonic()
        idle = [
            key
            for key, c in self._conversations.items()
            if not c.busy and not c.lock.locked() and now - c.last_at >= c.binding.idle_ttl_s
        ]
        for key in idle:
            conversation = self._conversations.pop(key)
            await self._close_room(conversation)
        self._limits.sweep(self._longest_window_s)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        conversations, self._conversations = list(self._conversations.values()), {}
        await asyncio.gather(*(self._close_room(c) for c in conversations))
        await self._writer.close()

    # -- records ------------------------------------------------------------------------

    def _record(
        self,
        inbound: Inbound,
        user_id: str,
        message_id: str,
        *,
        reply: Reply | None = None,
        reply_ms: int | None = None,
        error: ChannelError | None = None,
    ) -> None:
        binding = inbound.binding
        status = "processed" if error is None else ("refused" if error.refused else "failed")
        fields = {
            "binding_id": binding.binding_id,
            "kind": str(binding.kind),
            "conversation_id": inbound.conversation_id,
            "user_id": user_id,
            "message_id": message_id,
            "voice": inbound.audio is not None,
            "status": status,
            "error": error.as_dict() if error else None,
            "session_id": reply.session_id if reply else None,
            "agent_id": reply.agent_id if reply else None,
            "at": datetime.now(UTC),
            "reply_ms": reply_ms,
        }
        self._writer.submit(Record(CHANNEL_MESSAGES, f"msg_{uuid.uuid4().hex}", fields))


_last_seq = 0


def next_event_seq() -> int:
    """The outbox `seq` of a channel event: microseconds since the epoch, strictly increasing in
    this process, so two messages of one conversation in the same millisecond keep their order."""
    global _last_seq
    _last_seq = max(time.time_ns() // 1000, _last_seq + 1)
    return _last_seq


class _Announcer:
    """The three CloudEvents of one message, in order (`seq`), with the same subject."""

    def __init__(
        self,
        writer: NoLossWriter,
        binding: ChannelBinding,
        inbound: Inbound,
        user_id: str,
        message_id: str,
    ) -> None:
        self._writer = writer
        self._mark = binding.channel_mark(inbound.conversation_id)
        self._subject = f"{binding.binding_id}/{inbound.conversation_id}"
        self._base = f"msg_{uuid.uuid4().hex}"
        self._message_id = message_id
        self._user_id = user_id
        self._chars = len(inbound.text or "")

    def emit(self, kind: EventType, **details: Any) -> None:
        event = new_event(
            kind,
            CHANNELS_SOURCE,
            self._subject,
            message_data(
                channel=self._mark,
                message_id=self._message_id,
                user_id=self._user_id,
                chars=self._chars,
                **details,
            ),
            event_id=f"{self._base}:{kind.value.split('.')[1]}",
            agent_id=details.get("agent_id"),
            session_id=details.get("session_id"),
            ordering_key=f"channel:{self._subject}",
            seq=next_event_seq(),
        )
        self._writer.submit(outbox_record(event))
