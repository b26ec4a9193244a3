"""OpenAI, and any OpenAI-compatible server through `base_url` (Ollama, vLLM, llama.cpp)."""

from agent_configs.egress import destination
from agent_configs.models import LLMSpec
from worker.providers.registry import LLM_PROVIDERS, ChatEndpoint, allowed_url, read_api_key
from worker.settings import WorkerSettings


@LLM_PROVIDERS.register("openai")
def openai_endpoint(spec: LLMSpec, settings: WorkerSettings) -> ChatEndpoint:
    to = destination("llm", spec)
    assert to is not None and to.url is not None
    if to.secret_env is None:
        allowed_url(settings.egress, "llm", to)
        api_key = "not-needed"  # self-hosted OpenAI-compatible servers usually take no key
    else:
        api_key = read_api_key(settings.egress, "llm", to)
    return ChatEndpoint(
        provider="openai",
        model=spec.model,
        base_url=spec.base_url,
        api_key=api_key,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        top_p=spec.top_p,
    )
