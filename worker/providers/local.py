"""The embedded, fully offline providers: the local LLM server, Whisper STT and local TTS.

The LLM is reached through the same OpenAI-compatible client as production; only the
endpoint differs. STT/TTS classes are imported lazily: the `local` extra is optional.
"""

from agent_configs.models import LLMSpec, STTSpec, TTSSpec
from worker.providers.registry import (
    LLM_PROVIDERS,
    STT_PROVIDERS,
    TTS_PROVIDERS,
    ChatEndpoint,
    ProviderError,
)
from worker.settings import WorkerSettings


@LLM_PROVIDERS.register("local")
def local_endpoint(spec: LLMSpec, settings: WorkerSettings) -> ChatEndpoint:
    """The operator's endpoint (`LOCAL_LLM_URL`), and its model (`LOCAL_LLM_MODEL`) for every
    type: one variable moves every `local` type from the embedded SmolLM2-135M to the model an
    Ollama, vLLM or llama.cpp server serves. A config that names its own `base_url` chose its
    server and its model, so it keeps both."""
    own_server = bool(spec.base_url)
    return ChatEndpoint(
        provider="local",
        model=spec.model if own_server else settings.local_llm_model or spec.model,
        base_url=spec.base_url if own_server else settings.local_llm_url,
        api_key="local",
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        top_p=spec.top_p,
    )


def _local_extra_missing(exc: ImportError) -> ProviderError:
    return ProviderError(
        f"the local model stack is not installed ({exc.name}): run `make dev` or "
        "`pip install -e '.[local]'`, or set SWITCHBOARD_MODEL_PROFILE=cloud"
    )


@STT_PROVIDERS.register("local")
def local_stt(spec: STTSpec, settings: WorkerSettings) -> object:
    try:
        from worker.providers.local_stt import LocalWhisperSTT
    except ImportError as exc:
        raise _local_extra_missing(exc) from exc
    return LocalWhisperSTT(model=spec.model, language=spec.language)


@TTS_PROVIDERS.register("local")
def local_tts(spec: TTSSpec, settings: WorkerSettings) -> object:
    try:
        from worker.providers.local_tts import LocalTTS
    except ImportError as exc:
        raise _local_extra_missing(exc) from exc
    return LocalTTS(model=spec.model, voice=spec.voice, speed=spec.speed)
