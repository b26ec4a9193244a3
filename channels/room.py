"""One conversation of a channel as a LiveKit room: the channel is the room's user.

The room is dispatched to the worker like any frontend's (its job metadata carries the routing
metadata, the trusted `user_id` and the channel's mark), so the agent type, its tools, fields,
memory, records and events are the ones every frontend gets. A message goes in on `lk.chat`
(or, for a voice note, as a microphone track the agent's own STT transcribes); the answer is
the agent's `lk.transcription` stream (read as it streams, for the HTTP API's deltas) and the
turn's `agent-turn` payload (its fields, its status), which the worker publishes after every
answer, words or none, so waiting for it never hangs on what a model said.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from livekit import api, rtc

from devstack.frontend import leave_promptly

TURN_TOPIC = "agent-turn"
CHAT_TOPIC = "lk.chat"
TRANSCRIPTION_TOPIC = "lk.transcription"
AGENT_STATE = "lk.agent.state"
TRANSCRIBED_TRACK = "lk.transcribed_track_id"
GREETS = "switchboard.greets"
SESSION_ID = "switchboard.session_id"
AGENT_ID = "switchboard.agent_id"
TRAILING_SILENCE_S = 1.2
"""After a voice note, the silence that lets voice activity detection end the user's turn."""

Delta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class LiveKitAccess:
    """Where conversations' rooms are made: the server, its API key and the worker's name."""

    url: str
    api_key: str
    api_secret: str
    agent_name: str


class RoomGone(Exception):
    """The room closed or the agent left (its session ended) before it answered."""


@dataclass(frozen=True)
class Answer:
    text: str
    turn: dict[str, Any]


class RoomConversation:
    """A text (or voice-in, text-out) participant of one room, one turn at a time."""

    def __init__(
        self, access: LiveKitAccess, *, room_name: str, identity: str, job: dict[str, Any]
    ) -> None:
        self._access = access
        self.room_name = room_name
        self.identity = identity
        self._job = job
        self.room = rtc.Room()
        self.greeting: str | None = None
        self._changed = asyncio.Event()
        self._streams: list[str | None] = []
        """Each agent transcription: None while it streams, its text when it is complete."""
        self._turns: list[dict[str, Any]] = []
        self._on_delta: Delta | None = None
        self._delta_from = 0
        """Streams from this index on belong to the turn being answered."""
        self._microphone: rtc.AudioSource | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- joining ------------------------------------------------------------------------

    def _token(self) -> str:
        metadata = json.dumps(self._job, separators=(",", ":"))
        dispatch = api.RoomAgentDispatch(agent_name=self._access.agent_name, metadata=metadata)
        grants = api.VideoGrants(room_join=True, room=self.room_name, can_update_own_metadata=False)
        return (
            api.AccessToken(self._access.api_key, self._access.api_secret)
            .with_identity(self.identity)
            .with_grants(grants)
            .with_room_config(api.RoomConfiguration(agents=[dispatch]))
            .to_jwt()
        )

    async def open(self, timeout_s: float) -> None:
        """Joins, waits for the agent's session, and for its greeting when it greets (the
        greeting is kept apart: `greeting`)."""
        self.room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._on_text_stream)
        self.room.on("data_received", self._on_data)
        for event in ("participant_connected", "participant_disconnected", "disconnected"):
            self.room.on(event, lambda *_: self._changed.set())
        self.room.on("participant_attributes_changed", lambda *_: self._changed.set())
        await asyncio.wait_for(self.room.connect(self._access.url, self._token()), timeout_s)
        attributes = await self._wait(
            lambda: (a := self.agent_attributes()).get(AGENT_ID) and a,
            timeout_s,
            "the agent to join",
        )
        if attributes.get(GREETS) == "true":
            await self._wait(
                lambda: bool(self._streams) and self._streams[0] is not None,
                timeout_s,
                "the greeting",
            )
            self.greeting = self._streams[0]
        self._delta_from = len(self._streams)

    # -- what the agent sends ---------------------------------------------------------

    def agent(self) -> rtc.RemoteParticipant | None:
        for participant in self.room.remote_participants.values():
            if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return participant
        return None

    def agent_attributes(self) -> dict[str, str]:
        agent = self.agent()
        return dict(agent.attributes) if agent else {}

    @property
    def session_id(self) -> str | None:
        return self.agent_attributes().get(SESSION_ID)

    @property
    def agent_id(self) -> str | None:
        return self.agent_attributes().get(AGENT_ID)

    @property
    def gone(self) -> bool:
        return not self.room.isconnected() or self.agent() is None

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        if identity == self.identity:
            return  # the transcription of our own voice note
        index = len(self._streams)
        self._streams.append(None)
        task = asyncio.ensure_future(self._read(reader, index))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, reader: rtc.TextStreamReader, index: int) -> None:
        parts: list[str] = []
        try:
            async for chunk in reader:
                parts.append(chunk)
                if self._on_delta is not None and index >= self._delta_from and chunk:
                    with contextlib.suppress(Exception):  # a client gone mid-stream
                        await self._on_delta(chunk)
        except rtc.StreamError:
            pass  # the room closed mid-message: what arrived is kept
        self._streams[index] = "".join(parts)
        self._changed.set()

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TURN_TOPIC:
            return
        try:
            payload = json.loads(packet.data)
        except ValueError:
            return
        if isinstance(payload, dict):
            self._turns.append(payload)
            self._changed.set()

    async def _wait(self, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            result = condition()
            if result:
                return result
            if not self.room.isconnected():
                raise RoomGone(f"the room closed while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer within {timeout_s:.0f} s (waiting for {what})")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    # -- a turn -------------------------------------------------------------------------

    async def ask(
        self,
        *,
        text: str | None = None,
        audio: tuple[bytes, int] | None = None,
        on_delta: Delta | None = None,
        timeout_s: float,
    ) -> Answer:
        """Sends the message and returns the agent's answer: the turn's `agent-turn` payload and
        its words (the `system_response` field when the type has one, else what it said)."""
        turns_before = len(self._turns)
        self._delta_from = len(self._streams)
        self._on_delta = on_delta
        try:
            if audio is not None:
                await self._wait(
                    lambda: self.agent_attributes().get(AGENT_STATE) == "listening",
                    timeout_s,
                    "the agent to listen",
                )
                await self._speak(*audio)
            else:
                await self.room.local_participant.send_text(text or "", topic=CHAT_TOPIC)
            await self._wait(
                lambda: len(self._turns) > turns_before or self.agent() is None,
                timeout_s,
                "the agent's answer",
            )
            if len(self._turns) <= turns_before:
                raise RoomGone("the agent left (its session ended) without answering")
            turn = self._turns[turns_before]
            spoken = self._streams[self._delta_from :]
            if any(s is None for s in spoken):  # the turn is published as its words end
                await self._wait(
                    lambda: all(s is not None for s in self._streams[self._delta_from :]),
                    5.0,
                    "the rest of the reply",
                )
                spoken = self._streams[self._delta_from :]
        finally:
            self._on_delta = None
        reply = (turn.get("fields") or {}).get("system_response")
        if not isinstance(reply, str):
            reply = " ".join(s for s in spoken if s)
        self._delta_from = len(self._streams)
        return Answer(text=reply, turn=turn)

    async def _speak(self, pcm: bytes, sample_rate: int) -> None:
        """A voice note, as a microphone track in real time, then silence that ends the turn."""
        if self._microphone is None:
            self._microphone = rtc.AudioSource(sample_rate, 1)
            track = rtc.LocalAudioTrack.create_audio_track("voice-note", self._microphone)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(track, options)
        chunk = sample_rate // 100
        audio = np.frombuffer(pcm, dtype=np.int16)
        silence = np.zeros(int(sample_rate * TRAILING_SILENCE_S), dtype=np.int16)
        samples = np.concatenate([audio, silence])
        for start in range(0, samples.size, chunk):
            piece = samples[start : start + chunk]
            frame = rtc.AudioFrame(piece.tobytes(), sample_rate, 1, piece.size)
            await self._microphone.capture_frame(frame)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await leave_promptly(self.room)  # the session ends now, not 3 s later
