"""A voice note (Telegram's OGG/Opus) as the 16-bit mono PCM a room's microphone track takes.

Decoded with PyAV (FFmpeg's Opus decoder) and resampled to 48 kHz mono: Opus is 48 kHz inside,
so that rate costs no resampling of the speech, and it is the rate the hub's track publishes
at. The length is bounded while decoding (`max_seconds`), not after, so a file that claims
3 s but decodes to an hour stops at the bound instead of filling memory.
"""

import io

import av
import av.error

SAMPLE_RATE = 48_000
MAX_SECONDS = 300.0


class VoiceNoteRefused(ValueError):
    """A voice note that is not decodable audio, or longer than the bound."""


class VoiceNoteTooLong(VoiceNoteRefused):
    pass


def decode_voice_note(data: bytes, max_seconds: float = MAX_SECONDS) -> tuple[bytes, int]:
    """(pcm16 mono, sample rate) of an OGG/Opus (or any FFmpeg-readable) voice note."""
    max_bytes = int(max_seconds * SAMPLE_RATE) * 2
    pcm = bytearray()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise VoiceNoteRefused("the voice note has no audio")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pcm += out.to_ndarray().tobytes()
                if len(pcm) > max_bytes:
                    raise VoiceNoteTooLong(f"the voice note is longer than {max_seconds:g} s")
            for out in resampler.resample(None):
                pcm += out.to_ndarray().tobytes()
    except av.error.FFmpegError as exc:
        raise VoiceNoteRefused(f"the voice note is not audio FFmpeg can read: {exc}") from None
    if not pcm:
        raise VoiceNoteRefused("the voice note is silent (no audio frames)")
    return bytes(pcm[:max_bytes]), SAMPLE_RATE
