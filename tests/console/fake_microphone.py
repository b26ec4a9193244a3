"""The WAV Chromium plays as its fake microphone (`--use-file-for-fake-audio-capture`).

Spoken by the project's own offline TTS (espeak-ng through the espeakng-loader wheel, the
engine the built-in agent types speak with), so the test needs nothing the stack does not
already have. Chromium wants 16-bit PCM; 48 kHz mono is what WebRTC captures at, so it is
resampled from espeak-ng's 22050 Hz with LiveKit's own resampler (soxr inside livekit-rtc).
"""

import wave
from pathlib import Path

import numpy as np
from livekit import rtc

from worker.providers.local_tts import LocalTTS

CAPTURE_RATE = 48_000
SPOKEN = "Hello, I cannot log in to my account."
"""What the fake user says: words Whisper tiny.en gets right from espeak-ng's voice."""


async def spoken_pcm(text: str) -> tuple[np.ndarray, int]:
    """int16 samples of `text` as the local TTS says it, and their sample rate."""
    tts = LocalTTS(model="espeak-ng", voice="en-us", speed=0.9)
    frames = [event.frame async for event in tts.synthesize(text)]
    return np.frombuffer(b"".join(bytes(f.data) for f in frames), dtype=np.int16), tts.sample_rate


def resampled(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    resampler = rtc.AudioResampler(
        rate, target, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
    )
    out = resampler.push(bytearray(samples.tobytes())) + resampler.flush()
    return np.frombuffer(b"".join(bytes(frame.data) for frame in out), dtype=np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * CAPTURE_RATE), dtype=np.int16)


async def write_microphone_wav(
    path: Path, text: str = SPOKEN, *, silence_before_s: float = 1.0, silence_after_s: float = 5.0
) -> Path:
    """`text` spoken, padded with silence. Chromium loops the file: the pause after the words
    is the end of speech the agent's VAD waits for, and long enough for a test to mute the
    microphone once the words were transcribed, before they come round again."""
    samples, rate = await spoken_pcm(text)
    speech = resampled(samples, rate, CAPTURE_RATE)
    audio = np.concatenate([silence(silence_before_s), speech, silence(silence_after_s)])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(CAPTURE_RATE)
        wav.writeframes(audio.tobytes())
    return path
