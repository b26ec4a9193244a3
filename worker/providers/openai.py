"""OpenAI, and any OpenAI-compatible server through `base_url` (Ollama, vLLM, llama.cpp)."""

from agent_configs.models import LLMSpec
from worker.providers.registry import LLM_PROVIDERS, ChatEndpoint, read_api_key
from worker.settings import WorkerSettings


@LLM_PROVIDERS.register("openai")
def openai_endpoint(spec: LLMSpec, settings: WorkerSettings) -> ChatEndpoint:
    if spec.base_url and not spec.api_key_env:
        api_key = "not-needed"  # self-hosted OpenAI-compatible servers usually take no key
    else:
        api_key = read_api_key("llm.api_key_env", spec.api_key_env, "OPENAI_API_KEY")
    return ChatEndpoint(
        provider="openai",
        model=spec.model,
        base_url=spec.base_url,
        api_key=api_key,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        top_p=spec.top_p,
    )
