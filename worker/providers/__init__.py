"""Build livekit LLM / STT / TTS objects from an agent config's specs.

Importing this package registers the built-in providers (openai, deepgram, local).
"""

from typing import Any

from livekit.agents import llm as lk_llm
from livekit.agents import stt as lk_stt
from livekit.agents import tts as lk_tts
from livekit.plugins import openai as lk_openai

from agent_configs.egress import destination
from agent_configs.models import LLMSpec, STTSpec, TTSSpec
from worker.providers import deepgram, local, openai  # noqa: F401  (registers providers)
from worker.providers.clients import openai_client
from worker.providers.registry import (
    LLM_PROVIDERS,
    STT_PROVIDERS,
    TTS_PROVIDERS,
    ChatEndpoint,
    ProviderError,
    allowed_url,
)
from worker.settings import WorkerSettings

FALLBACK_ATTEMPT_TIMEOUT_S = 30.0
"""How long a model may take to start answering before the next one is tried; generous,
because a small local model on a busy CPU can be slow to its first token."""

__all__ = ["ChatEndpoint", "ProviderError", "build_llm", "build_stt", "build_tts", "chat_endpoints"]


def _llm_for_profile(spec: LLMSpec, settings: WorkerSettings) -> LLMSpec:
    if settings.model_profile == "cloud" and spec.provider == "local":
        return spec.model_copy(
            update={"provider": "openai", "model": settings.cloud_llm_model, "base_url": None}
        )
    return spec


def chat_endpoints(spec: LLMSpec, settings: WorkerSettings) -> list[ChatEndpoint]:
    """The primary model first, then its fallbacks, in the order they are tried. Each is
    checked against the egress policy under its own path before its provider is asked."""
    specs = [("llm", spec), *((f"llm.fallback.{i}", s) for i, s in enumerate(spec.fallback))]
    endpoints = []
    for path, configured in specs:
        effective = _llm_for_profile(configured, settings)
        allowed_url(settings.egress, path, destination("llm", effective))
        endpoints.append(LLM_PROVIDERS.get(effective.provider)(effective, settings))
    return endpoints


def _openai_llm(endpoint: ChatEndpoint) -> lk_openai.LLM:
    options: dict[str, Any] = {"temperature": endpoint.temperature}
    if endpoint.max_tokens is not None:
        options["max_completion_tokens"] = endpoint.max_tokens
    if endpoint.top_p is not None:
        options["top_p"] = endpoint.top_p
    return lk_openai.LLM(model=endpoint.model, client=openai_client(endpoint), **options)


def build_llm(endpoints: list[ChatEndpoint]) -> lk_llm.LLM:
    """One LLM, or livekit's FallbackAdapter trying each endpoint in turn."""
    models: list[lk_llm.LLM] = [_openai_llm(e) for e in endpoints]
    if len(models) == 1:
        return models[0]
    return lk_llm.FallbackAdapter(
        models, attempt_timeout=FALLBACK_ATTEMPT_TIMEOUT_S, max_retry_per_llm=0
    )


def build_stt(spec: STTSpec, settings: WorkerSettings) -> lk_stt.STT:
    if settings.model_profile == "cloud" and spec.provider == "local":
        spec = spec.model_copy(update={"provider": "deepgram", "model": settings.cloud_stt_model})
    allowed_url(settings.egress, "stt", destination("stt", spec))
    return STT_PROVIDERS.get(spec.provider)(spec, settings)  # type: ignore[return-value]


def build_tts(spec: TTSSpec, settings: WorkerSettings) -> lk_tts.TTS:
    if settings.model_profile == "cloud" and spec.provider == "local":
        spec = spec.model_copy(
            update={"provider": "deepgram", "model": settings.cloud_tts_model, "voice": None}
        )
    allowed_url(settings.egress, "tts", destination("tts", spec))
    return TTS_PROVIDERS.get(spec.provider)(spec, settings)  # type: ignore[return-value]
