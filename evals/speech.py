"""What a voice scenario's user says, as speech: espeak-ng, the local TTS the built-in agent
types speak with and the voice tests talk with (en-us at 0.9 speed: words Whisper tiny.en
transcribes right in tests/worker/test_voice_session.py).

The engine is the worker's own (worker/providers/local_tts.py): the one place that drives
libespeak-ng. It is loaded (`prepare`) before a voice scenario's first room is joined, so a
text-only run never loads it, and is the one import of `worker` in evals/ (bench/ does the
same for its voices). Not later: importing `worker.providers` takes 1.4 s of CPU (its livekit
plugins) and blocks the event loop meanwhile, and livekit's FFI panics and SIGTERMs the whole
process when a room that just connected is not told "ready for events" in time ("timed out
waiting for ReadyForRoomEventRequest after ConnectCallback": a run's process died so when the
import came right after the join, on a busy machine).
"""

import asyncio
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.providers.local_tts import EspeakEngine

VOICE = "en-us"
SPEED = 0.9


def prepare() -> None:
    """Load the engine now, on the main thread, while no room is connecting."""
    _engine()


@cache
def _engine() -> "EspeakEngine":
    from worker.providers.local_tts import EspeakEngine

    return EspeakEngine(VOICE)


async def synthesize(text: str) -> tuple[bytes, int]:
    """16-bit mono PCM and its sample rate (espeak-ng's 22050 Hz). The engine is loaded on
    this (the main) thread if `prepare` did not: importing `worker.providers` registers livekit
    plugins, which must happen on the main thread. Synthesis takes a few ms a word; it runs in
    a thread so the room's audio keeps flowing meanwhile."""
    engine = _engine()
    pcm = await asyncio.to_thread(lambda: b"".join(engine.synthesize(text, SPEED)))
    return pcm, engine.sample_rate
