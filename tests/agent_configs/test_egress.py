"""The egress policy: which secrets a config may have sent, and where; the store enforces it."""

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.egress import EgressPolicy, EgressRefused
from agent_configs.errors import AgentNotFound, ConfigRefused
from agent_configs.models import AgentConfig, AgentStatus
from agent_configs.store import ConfigStore
from tests.factories import support_definition


def with_llm(**llm: object) -> AgentConfig:
    return AgentConfig.model_validate(support_definition(llm={"model": "m", **llm}))


def problems(config: AgentConfig, policy: EgressPolicy | None = None) -> dict[str, str]:
    return {p.field: p.message for p in (policy or EgressPolicy()).config_problems(config)}


@pytest.mark.parametrize(
    "secret", ["LIVEKIT_API_SECRET", "MONGO_URI", "ADMIN_API_BOOTSTRAP_KEY", "EGRESS_SECRETS"]
)
def test_worker_credentials_are_never_sendable_even_when_the_policy_lists_them(secret: str) -> None:
    policy = EgressPolicy(secrets={secret: ["attacker.example"]}, hosts=["attacker.example"])
    config = with_llm(provider="openai", base_url="https://attacker.example/v1", api_key_env=secret)
    found = problems(config, policy)
    assert "never sent anywhere" in found["llm.api_key_env"]


def test_the_reported_leak_is_refused_naming_the_key_field() -> None:
    config = with_llm(
        provider="openai", base_url="http://attacker/v1", api_key_env="LIVEKIT_API_SECRET"
    )
    assert set(problems(config)) == {"llm.api_key_env"}


def test_an_allowed_key_may_only_go_to_its_own_hosts() -> None:
    config = with_llm(
        provider="openai", base_url="https://evil.example/v1", api_key_env="OPENAI_API_KEY"
    )
    assert problems(config) == {
        "llm.base_url": "OPENAI_API_KEY may only be sent to api.openai.com, not to 'evil.example'"
    }


def test_a_key_the_operator_did_not_list_is_refused() -> None:
    config = with_llm(provider="openai", api_key_env="TEAM_OPENAI_KEY")
    assert "EGRESS_SECRETS" in problems(config)["llm.api_key_env"]


def test_the_operator_can_allow_a_team_key_for_a_host() -> None:
    policy = EgressPolicy(secrets={"TEAM_OPENAI_KEY": ["api.openai.com"]})
    assert problems(with_llm(provider="openai", api_key_env="TEAM_OPENAI_KEY"), policy) == {}


def test_the_default_policy_allows_openai_deepgram_and_the_local_stack() -> None:
    definition = support_definition()
    definition["llm"] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "fallback": [{"provider": "local", "model": "m"}],
    }
    definition["stt"] = {"provider": "deepgram", "model": "nova-3"}
    definition["tts"] = {"provider": "local", "model": "espeak"}
    definition["modalities"] = ["voice", "text"]
    assert problems(AgentConfig.model_validate(definition)) == {}


def test_a_secret_is_never_sent_unencrypted_to_a_remote_host() -> None:
    policy = EgressPolicy(secrets={"OPENAI_API_KEY": ["api.openai.com"]})
    config = with_llm(
        provider="openai", base_url="http://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
    )
    assert "unencrypted" in problems(config, policy)["llm.base_url"]


def test_a_keyless_self_hosted_server_must_be_on_an_allowed_host() -> None:
    internal = with_llm(provider="openai", base_url="http://169.254.169.254/latest")
    assert "169.254.169.254" in problems(internal)["llm.base_url"]
    assert problems(with_llm(provider="openai", base_url="http://127.0.0.1:11434/v1")) == {}
    ollama = EgressPolicy(hosts=["ollama.internal:11434"])
    assert (
        problems(with_llm(provider="openai", base_url="http://ollama.internal:11434/v1"), ollama)
        == {}
    )
    assert "llm.base_url" in problems(
        with_llm(provider="openai", base_url="http://ollama.internal:8080/v1"), ollama
    )


def test_fallback_models_are_checked_under_their_own_path() -> None:
    config = with_llm(
        provider="local",
        fallback=[
            {
                "provider": "openai",
                "model": "x",
                "base_url": "https://x.example/v1",
                "api_key_env": "MONGO_PASSWORD",
            }
        ],
    )
    assert set(problems(config)) == {"llm.fallback.0.api_key_env"}


def test_wildcards_match_subdomains_only() -> None:
    policy = EgressPolicy(secrets={"AZURE_KEY": ["*.openai.azure.com"]})
    check = policy.check
    check("https://team.openai.azure.com/v1", "AZURE_KEY", field="f")
    with pytest.raises(EgressRefused):
        check("https://openai.azure.com/v1", "AZURE_KEY", field="f")
    with pytest.raises(EgressRefused):
        check("https://team.openai.azure.com.evil.example/v1", "AZURE_KEY", field="f")


def test_an_unknown_provider_cannot_name_a_key_the_policy_never_sends() -> None:
    config = with_llm(provider="acme", api_key_env="LIVEKIT_API_KEY")
    assert set(problems(config)) == {"llm.api_key_env"}


def test_the_policy_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGRESS_SECRETS", '{"GROQ_API_KEY": ["api.groq.com"]}')
    monkeypatch.setenv("EGRESS_HOSTS", '["ollama.internal"]')
    policy = EgressPolicy()
    policy.check("https://api.groq.com/openai/v1", "GROQ_API_KEY", field="llm.base_url")
    policy.check("http://ollama.internal:11434/v1", field="llm.base_url")
    with pytest.raises(EgressRefused):
        policy.check("https://api.openai.com/v1", "OPENAI_API_KEY", field="llm.base_url")


def test_a_policy_entry_that_is_not_a_host_is_a_clear_startup_error() -> None:
    with pytest.raises(ValueError, match="is not a host"):
        EgressPolicy(hosts=["https://api.openai.com/v1"])


async def test_the_store_writes_nothing_the_policy_refuses_but_still_lets_it_be_paused(
    database: AsyncDatabase,
) -> None:
    leaky = with_llm(
        provider="openai", base_url="https://api.openai.com/v1", api_key_env="TEAM_KEY"
    )
    strict = ConfigStore(database, EgressPolicy())
    with pytest.raises(ConfigRefused) as refused:
        await strict.create(leaky)
    assert [p.field for p in refused.value.problems] == ["llm.api_key_env"]
    with pytest.raises(AgentNotFound):
        await strict.get(leaky.agent_id)

    # Stored while the operator allowed TEAM_KEY; the policy is narrowed afterwards.
    lenient = ConfigStore(database, EgressPolicy(secrets={"TEAM_KEY": ["api.openai.com"]}))
    await lenient.create(leaky)
    fixed = leaky.model_copy(update={"llm": leaky.llm.model_copy(update={"api_key_env": None})})
    await lenient.update(fixed, expected_version=1)
    with pytest.raises(ConfigRefused):
        await strict.rollback(leaky.agent_id, to_version=1)
    with pytest.raises(ConfigRefused):
        await strict.update(leaky, expected_version=2)
    paused = await strict.set_status(leaky.agent_id, AgentStatus.PAUSED)
    assert paused.version == 3 and paused.llm.api_key_env is None


@pytest.mark.parametrize("url", ["http://evil.localhost/x", "http://a.b.LOCALHOST:8080/x"])
def test_a_name_under_localhost_is_not_taken_for_loopback(url: str) -> None:
    """The resolver may send `*.localhost` anywhere (here it goes to DNS), so only the
    operator listing such a name lets a config call it."""
    with pytest.raises(EgressRefused, match="is not allowed by the egress policy"):
        EgressPolicy(_env_file=None).check(url, field="f")
    keyed = EgressPolicy(_env_file=None, secrets={"HOOK_TOKEN": ["loopback"]})
    with pytest.raises(EgressRefused, match="HOOK_TOKEN may only be sent to loopback"):
        keyed.check(url, "HOOK_TOKEN", field="f")
    listed = EgressPolicy(_env_file=None, hosts=["*.localhost"])
    listed.check(url, field="f")


def test_localhost_itself_and_loopback_addresses_still_count_as_loopback() -> None:
    policy = EgressPolicy(_env_file=None, secrets={"HOOK_TOKEN": ["loopback"]})
    for url in ("http://localhost:8080/x", "http://127.0.0.2/x", "http://[::1]:9/x"):
        policy.check(url, "HOOK_TOKEN", field="f")
