"""Provider registry: configs name providers and env vars; the worker turns them into models."""

from typing import Any

import pytest
from livekit.agents import llm as lk_llm

from agent_configs.models import LLMSpec, STTSpec, TTSSpec
from worker.providers import build_llm, build_stt, build_tts, chat_endpoints
from worker.providers.registry import ProviderError
from worker.settings import WorkerSettings


def settings(**values: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, **values)


def test_unknown_provider_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(
        ProviderError, match=r"llm.provider 'anthropic' is not registered.*local, openai"
    ):
        chat_endpoints(LLMSpec(provider="anthropic", model="claude"), settings())


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(
        ProviderError, match="llm.api_key_env: environment variable OPENAI_API_KEY is not set"
    ):
        chat_endpoints(LLMSpec(provider="openai", model="gpt-4o-mini"), settings())


def test_key_is_read_from_the_named_env_var_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEAM_OPENAI_KEY", "value-from-env-123")
    monkeypatch.setenv("EGRESS_SECRETS", '{"TEAM_OPENAI_KEY": ["api.openai.com"]}')
    (endpoint,) = chat_endpoints(
        LLMSpec(provider="openai", model="gpt-4o-mini", api_key_env="TEAM_OPENAI_KEY"), settings()
    )
    assert endpoint.api_key == "value-from-env-123"
    assert "value-from-env-123" not in repr(endpoint)


@pytest.mark.parametrize("key", ["LIVEKIT_API_SECRET", "UNLISTED_KEY"])
def test_a_key_the_egress_policy_refuses_is_never_read_even_for_a_config_stored_by_hand(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv(key, "must-not-leave")
    spec = LLMSpec(
        provider="local",
        model="m",
        fallback=[
            LLMSpec(provider="openai", model="x", base_url="http://127.0.0.1:9/v1", api_key_env=key)
        ],
    )
    with pytest.raises(ProviderError, match=r"^llm\.fallback\.0\.api_key_env: ") as refused:
        chat_endpoints(spec, settings())
    assert "must-not-leave" not in str(refused.value)


async def test_fallbacks_become_a_fallback_adapter_in_order() -> None:
    spec = LLMSpec(
        provider="openai",
        model="primary",
        base_url="http://127.0.0.1:9/v1",
        fallback=[LLMSpec(provider="local", model="smollm2-135m-instruct")],
    )
    endpoints = chat_endpoints(spec, settings(local_llm_url="http://127.0.0.1:8088/v1"))
    assert [(e.model, e.base_url) for e in endpoints] == [
        ("primary", "http://127.0.0.1:9/v1"),
        ("smollm2-135m-instruct", "http://127.0.0.1:8088/v1"),
    ]
    assert isinstance(build_llm(endpoints), lk_llm.FallbackAdapter)


def test_cloud_profile_switches_local_types_without_editing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "k")
    cloud = settings(model_profile="cloud")
    (endpoint,) = chat_endpoints(LLMSpec(provider="local", model="smollm2-135m-instruct"), cloud)
    assert (endpoint.provider, endpoint.model, endpoint.base_url) == ("openai", "gpt-4o-mini", None)
    assert type(build_stt(STTSpec(model="tiny.en"), cloud)).__module__.startswith(
        "livekit.plugins.deepgram"
    )
    assert type(build_tts(TTSSpec(model="espeak-ng"), cloud)).__module__.startswith(
        "livekit.plugins.deepgram"
    )


def test_local_llm_model_applies_to_every_local_type_on_the_operators_endpoint() -> None:
    ollama = settings(local_llm_url="http://127.0.0.1:11434/v1", local_llm_model="llama3.2:3b")
    spec = LLMSpec(
        provider="local",
        model="smollm2-135m-instruct",
        fallback=[LLMSpec(provider="local", model="other", base_url="http://127.0.0.1:9999/v1")],
    )
    primary, own = chat_endpoints(spec, ollama)
    assert (primary.model, primary.base_url) == ("llama3.2:3b", "http://127.0.0.1:11434/v1")
    # a config that names its own server chose its model too
    assert (own.model, own.base_url) == ("other", "http://127.0.0.1:9999/v1")
    unset = settings(local_llm_model="")  # an empty variable is no model
    assert chat_endpoints(LLMSpec(provider="local", model="smollm2-135m-instruct"), unset)[
        0
    ].model == ("smollm2-135m-instruct")
