"""Deepgram speech-to-text and text-to-speech through livekit's Deepgram plugin."""

from typing import Literal

from livekit.plugins import deepgram

from agent_configs.egress import Destination, destination
from agent_configs.models import STTSpec, TTSSpec
from worker.providers.registry import STT_PROVIDERS, TTS_PROVIDERS, read_api_key
from worker.settings import WorkerSettings


def _destination(kind: Literal["stt", "tts"], spec: STTSpec | TTSSpec) -> Destination:
    to = destination(kind, spec)
    assert to is not None  # deepgram is one of the providers agent_configs.egress knows
    return to


@STT_PROVIDERS.register("deepgram")
def deepgram_stt(spec: STTSpec, settings: WorkerSettings) -> deepgram.STT:
    api_key = read_api_key(settings.egress, "stt", _destination("stt", spec))
    return deepgram.STT(model=spec.model, language=spec.language, api_key=api_key)


@TTS_PROVIDERS.register("deepgram")
def deepgram_tts(spec: TTSSpec, settings: WorkerSettings) -> deepgram.TTS:
    api_key = read_api_key(settings.egress, "tts", _destination("tts", spec))
    return deepgram.TTS(model=spec.model, api_key=api_key, speed=spec.speed)
