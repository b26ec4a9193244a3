"""A minimal real frontend: joins a room with metadata over the livekit rtc SDK, chats on
`lk.chat`, and collects what the agent sends (transcriptions, data topics, attributes).

Used by `python -m devstack chat` and by the end-to-end tests.
"""

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
from livekit import api, rtc
from livekit.rtc.participant import PublishDataTrackError


class RoomClient:
    """One participant in one fresh room, dispatching `agent_name` explicitly."""

    def __init__(self, url: str, api_key: str, api_secret: str, agent_name: str) -> None:
        self.url = url
        self.api_key = api_key
        self.api_secret = api_secret
        self.agent_name = agent_name
        self.room = rtc.Room()
        self.room_name = f"room-{uuid.uuid4().hex[:10]}"
        self.transcripts: list[str] = []
        self.data: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.agent_audio_rms: list[float] = []
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._microphone: rtc.AudioSource | None = None

    def token(
        self,
        metadata: str | None,
        identity: str,
        *,
        in_dispatch: bool = True,
        may_update_own_metadata: bool = False,
    ) -> str:
        dispatch = api.RoomAgentDispatch(
            agent_name=self.agent_name, metadata=(metadata or "") if in_dispatch else ""
        )
        grants = api.VideoGrants(
            room_join=True, room=self.room_name, can_update_own_metadata=may_update_own_metadata
        )
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(grants)
            .with_room_config(api.RoomConfiguration(agents=[dispatch]))
        )
        if metadata is not None:
            token = token.with_metadata(metadata)
        return token.to_jwt()

    async def join(
        self,
        metadata: str | dict[str, Any] | None,
        identity: str = "user-1",
        *,
        in_dispatch: bool = True,
        may_update_own_metadata: bool = False,
    ) -> None:
        """`metadata` goes on the participant and in the explicit dispatch, as a frontend does.

        `in_dispatch=False` leaves it on the participant only; `may_update_own_metadata` lets
        the participant change it (a token grant the worker does not trust for `user_id`)."""
        text = json.dumps(metadata) if isinstance(metadata, dict) else metadata
        self.room.register_text_stream_handler("lk.transcription", self._on_text_stream)
        self.room.on("data_received", self._on_data)
        self.room.on("participant_attributes_changed", lambda *_: self._changed.set())
        self.room.on("participant_connected", lambda *_: self._changed.set())
        self.room.on("track_subscribed", self._on_track)
        token = self.token(
            text, identity, in_dispatch=in_dispatch, may_update_own_metadata=may_update_own_metadata
        )
        await self.room.connect(self.url, token)

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            try:
                self.transcripts.append(await reader.read_all())
            except rtc.StreamError:
                return  # the room closed mid-message
            self._changed.set()

        asyncio.ensure_future(read())

    def _on_data(self, packet: rtc.DataPacket) -> None:
        try:
            self.data[packet.topic or ""].append(json.loads(packet.data))
        except ValueError:
            return
        self._changed.set()

    def _on_track(self, track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            task = asyncio.ensure_future(self._measure_audio(track))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _measure_audio(self, track: rtc.Track) -> None:
        """RMS of each 10 ms frame the agent sends: proof its voice is audible, not silence."""
        async for event in rtc.AudioStream(track):
            samples = np.frombuffer(bytes(event.frame.data), dtype=np.int16).astype(np.float32)
            self.agent_audio_rms.append(
                float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
            )
            if len(self.agent_audio_rms) % 50 == 0:
                self._changed.set()

    async def speak(self, pcm: bytes, sample_rate: int, trailing_silence_s: float = 1.5) -> None:
        """Publish 16-bit mono speech as a microphone track, in real time, then silence so
        voice activity detection hears the end of the turn."""
        if self._microphone is None:
            self._microphone = rtc.AudioSource(sample_rate, 1)
            track = rtc.LocalAudioTrack.create_audio_track("microphone", self._microphone)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(track, options)
        chunk = sample_rate // 100  # 10 ms
        audio = np.frombuffer(pcm, dtype=np.int16)
        silence = np.zeros(int(sample_rate * trailing_silence_s), dtype=np.int16)
        for samples in np.array_split(
            np.concatenate([audio, silence]), max(1, (audio.size + silence.size) // chunk)
        ):
            frame = rtc.AudioFrame(samples.tobytes(), sample_rate, 1, samples.size)
            await self._microphone.capture_frame(frame)

    async def wait_for(self, condition: Any, timeout: float = 60.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; transcripts={self.transcripts} "
                    f"data={dict(self.data)} agent={self.agent_attributes()}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass

    def agent_attributes(self) -> dict[str, str]:
        for participant in self.room.remote_participants.values():
            if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return dict(participant.attributes)
        return {}

    async def routed_agent(self, timeout: float = 60.0) -> tuple[str, str]:
        attrs = await self.wait_for(
            lambda: (a := self.agent_attributes()).get("switchboard.agent_id") and a,
            timeout,
            "the agent's switchboard.agent_id attribute",
        )
        return attrs["switchboard.agent_id"], attrs["switchboard.strategy"]

    async def say(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic="lk.chat")

    async def next_transcript(self, after: int, timeout: float = 120.0) -> str:
        await self.wait_for(
            lambda: len(self.transcripts) > after, timeout, f"transcript #{after + 1}"
        )
        return self.transcripts[after]

    async def next_turn(self, after: int, timeout: float = 180.0) -> dict[str, Any]:
        """The `agent-turn` payload after `after` others: the worker publishes one for every
        answer, words or none (a failed turn), so waiting for it never hangs on what a
        model said, as waiting for a transcript does when the reply was blank."""
        await self.wait_for(
            lambda: len(self.data.get("agent-turn", [])) > after,
            timeout,
            f"agent-turn #{after + 1}",
        )
        return self.data["agent-turn"][after]

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        await leave_promptly(self.room)


async def leave_promptly(room: rtc.Room) -> None:
    """Leaves `room` so that the agent sees the departure at once.

    LiveKit batches the updates of a participant that publishes nothing and sends them every
    3 s (livekit-server 1.13 rtc/room.go, `subscriberUpdateInterval`): a text-only user's
    departure reached the agent 2.5 s after the user left (measured), and the session ended
    that much later. A publisher's departure goes out at once, and a data track is the
    publication the agent ignores. Best effort: a server without data tracks sees the slower
    departure. A participant that publishes already (a microphone) leaves promptly as it is."""
    if room.isconnected() and not room.local_participant.track_publications:
        with contextlib.suppress(PublishDataTrackError, TimeoutError):
            await asyncio.wait_for(room.local_participant.publish_data_track(name="leaving"), 2.0)
    await room.disconnect()
