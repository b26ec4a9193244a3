"""Deepgram speech-to-text and text-to-speech through livekit's Deepgram plugin."""

from livekit.plugins import deepgram

from agent_configs.models import STTSpec, TTSSpec
from worker.providers.registry import STT_PROVIDERS, TTS_PROVIDERS, read_api_key
from worker.settings import WorkerSettings


@STT_PROVIDERS.register("deepgram")
def deepgram_stt(spec: STTSpec, settings: WorkerSettings) -> deepgram.STT:
    api_key = read_api_key("stt.api_key_env", spec.api_key_env, "DEEPGRAM_API_KEY")
    return deepgram.STT(model=spec.model, language=spec.language, api_key=api_key)


@TTS_PROVIDERS.register("deepgram")
def deepgram_tts(spec: TTSSpec, settings: WorkerSettings) -> deepgram.TTS:
    api_key = read_api_key("tts.api_key_env", spec.api_key_env, "DEEPGRAM_API_KEY")
    return deepgram.TTS(model=spec.model, api_key=api_key, speed=spec.speed)
