"""Provider registry: a provider is added by registering a factory, not by editing an if-chain.

    @LLM_PROVIDERS.register("my-provider")
    def my_endpoint(spec: LLMSpec, settings: WorkerSettings) -> ChatEndpoint: ...

LLM providers resolve a spec to an OpenAI-compatible `ChatEndpoint`: the same endpoint
drives the conversation (livekit's OpenAI plugin) and the JSON-schema constrained turn calls.
STT and TTS providers build livekit `stt.STT` / `tts.TTS` objects directly.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from livekit.agents.types import APIConnectOptions

from agent_configs.egress import Destination, EgressPolicy, EgressRefused
from agent_configs.models import LLMSpec, STTSpec, TTSSpec
from worker.settings import WorkerSettings

Factory = TypeVar("Factory", bound=Callable[..., object])


class ProviderError(Exception):
    """A config names a provider or credential this worker cannot use; says which and why."""


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to call one chat model. `api_key` is read from the env, never stored.

    The last five fields are what the provider knows about its server's quirks (set by its
    factory, e.g. worker/providers/local.py): session and turn code read them and never ask
    which provider it is. The defaults describe OpenAI's API."""

    provider: str
    model: str
    base_url: str | None
    api_key: str
    temperature: float
    max_tokens: int | None
    top_p: float | None
    bounded_strings: bool = False
    """The server's JSON-schema decoding honours `minLength` / `maxLength` (llama.cpp's
    grammar does): the constrained reply is then bounded so its JSON closes within the token
    budget. OpenAI's strict mode refuses those keywords."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Sampling options outside the OpenAI API, sent with every constrained call."""
    connect_options: APIConnectOptions | None = None
    """How livekit calls it (timeout, retries); None: livekit's defaults."""
    supports_tools_with_schema: bool = True
    """A request may carry `tools` and a JSON-schema `response_format` together and the model
    still chooses between calling a tool and writing the JSON (OpenAI). When False, a type
    with tools gets plain-text replies and its fields from the extraction call, so that the
    model can call its tools at all (worker/session.py `fields_in_reply`)."""
    compact_json_grammar: bool = False
    """The server takes a JSON schema as an LLGuidance grammar (llama.cpp built with
    LLGuidance, as the embedded xllamacpp server is), which can forbid whitespace between the
    JSON's tokens. llama.cpp's grammar for a `response_format` allows newlines and indents
    between them, and a ```json fence before the document (stripped from the content, still
    generated); the embedded model wrote both: the built-in types' turns generated 1.33x the
    tokens of their compact JSON, 1.05x with this grammar (bench/tokens.py, 16 turns)."""

    def structured_options(self, response_format: dict[str, Any] | None) -> dict[str, Any]:
        """The options of a request to this server: its sampling extras and, given a
        JSON-schema `response_format`, the structured output in the form it decodes best."""
        extra = dict(self.extra_body)
        options: dict[str, Any] = {}
        if response_format is not None and self.compact_json_grammar:
            extra["grammar"] = compact_json_grammar(response_format["json_schema"]["schema"])
        elif response_format is not None:
            options["response_format"] = response_format
        if extra:
            options["extra_body"] = extra
        return options

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"ChatEndpoint(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"


def compact_json_grammar(schema: dict[str, Any]) -> str:
    """An LLGuidance grammar for documents of `schema` written compactly: `{"a":1,"b":[2]}`,
    no whitespace outside strings (its `x-guidance` options; llama.cpp docs/llguidance.md)."""
    compact = schema | {"x-guidance": {"whitespace_flexible": False}}
    return f"%llguidance {{}}\nstart: %json {json.dumps(compact)}"


class Registry(Generic[Factory]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Factory] = {}

    def register(self, name: str) -> Callable[[Factory], Factory]:
        def decorator(factory: Factory) -> Factory:
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Factory:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ProviderError(
                f"{self.kind}.provider '{name}' is not registered in this worker (known: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._factories)


LLM_PROVIDERS: Registry[Callable[[LLMSpec, WorkerSettings], ChatEndpoint]] = Registry("llm")
STT_PROVIDERS: Registry[Callable[[STTSpec, WorkerSettings], object]] = Registry("stt")
TTS_PROVIDERS: Registry[Callable[[TTSSpec, WorkerSettings], object]] = Registry("tts")


def read_api_key(policy: EgressPolicy, field: str, to: Destination) -> str:
    """The key `to` names, read from the environment only if the egress policy lets it go to
    `to.url`: the one way a provider gets a secret. `field` is the spec's config path."""
    allowed_url(policy, field, to)
    name = to.secret_env
    if name is None:
        raise ProviderError(f"{field}.api_key_env: no key is named for this provider")
    value = os.environ.get(name)
    if not value:
        raise ProviderError(f"{field}.api_key_env: environment variable {name} is not set")
    return value


def allowed_url(policy: EgressPolicy, field: str, to: Destination | None) -> None:
    """Refuse (as a ProviderError naming the field) a call the egress policy does not allow.
    `to` None: a provider agent_configs.egress does not know, which checks its own URL."""
    try:
        policy.check_destination(to, field=field)
    except EgressRefused as exc:
        raise ProviderError(f"{exc} (refused at call time)") from None
