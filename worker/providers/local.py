"""The embedded, fully offline providers: the local LLM server, Whisper STT and local TTS.

The LLM is reached through the same OpenAI-compatible client as production; only the
endpoint differs. STT/TTS classes are imported lazily: the `local` extra is optional.
"""

from livekit.agents.types import APIConnectOptions

from agent_configs.models import LLMSpec, STTSpec, TTSSpec
from worker.providers.registry import (
    LLM_PROVIDERS,
    STT_PROVIDERS,
    TTS_PROVIDERS,
    ChatEndpoint,
    ProviderError,
)
from worker.settings import WorkerSettings

LOCAL_SAMPLING = {"repeat_penalty": 1.15}
"""llama.cpp only: keeps a small model from looping inside a string."""
LOCAL_LLM_CONNECT = APIConnectOptions(timeout=60.0, max_retry=1)
"""A local model on shared CPUs queues requests: livekit's default (10 s, 3 retries) timed
queued replies out and re-queued them at the back until the reply was dropped."""


@LLM_PROVIDERS.register("local")
def local_endpoint(spec: LLMSpec, settings: WorkerSettings) -> ChatEndpoint:
    """The operator's endpoint (`LOCAL_LLM_URL`), and its model (`LOCAL_LLM_MODEL`) for every
    type: one variable moves every `local` type from the embedded SmolLM2-135M to the model an
    Ollama, vLLM or llama.cpp server serves. A config that names its own `base_url` chose its
    server and its model, so it keeps both."""
    own_server = bool(spec.base_url)
    # `supports_tools_with_schema`: measured on the embedded llama.cpp server (xllamacpp,
    # SmolLM2-135M): a request with `tools` and a JSON-schema `response_format` is accepted
    # (200), but the schema's grammar constrains every token, so the answer is always the
    # JSON and never a tool call, `tool_choice: "required"` included. An operator's server
    # behind LOCAL_LLM_URL (Ollama, vLLM) is treated the same way (not measured).
    # `compact_json_grammar`: only when LOCAL_LLM_URL is known to be the embedded server
    # (LOCAL_LLM_EMBEDDED), whose llama.cpp is built with LLGuidance; another llama.cpp may
    # not be, and Ollama's or vLLM's OpenAI endpoints take no `grammar`.
    return ChatEndpoint(
        provider="local",
        model=spec.model if own_server else settings.local_llm_model or spec.model,
        base_url=spec.base_url if own_server else settings.local_llm_url,
        api_key="local",
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        top_p=spec.top_p,
        bounded_strings=True,
        extra_body=LOCAL_SAMPLING,
        connect_options=LOCAL_LLM_CONNECT,
        supports_tools_with_schema=False,
        compact_json_grammar=settings.local_llm_embedded and not own_server,
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
