"""The egress policy: the one answer to "may this config send secret X to URL Y".

Agent configs live in MongoDB and anyone with an admin key edits them, so a config must never
be able to choose where a worker's secrets go. Before this policy, `llm.base_url:
http://attacker/v1` with `api_key_env: LIVEKIT_API_SECRET` made the worker send the LiveKit
secret as a bearer token to that host (livekit-agents copies it into every worker's
environment, so it is always there to take).

The policy is the operator's, read from the environment (never from MongoDB):

- `EGRESS_SECRETS`: JSON, env var name -> the hosts its value may be sent to.
  Default `{"OPENAI_API_KEY": ["api.openai.com"], "DEEPGRAM_API_KEY": ["api.deepgram.com"]}`.
- `EGRESS_HOSTS`: JSON list of hosts a config may make the worker call without a secret
  (self-hosted models, later tools and webhooks). Default: loopback only. Every host in
  `EGRESS_SECRETS` is reachable too.

A host is `api.openai.com` (exactly that name), `*.example.com` (any subdomain), either with
`:port` to allow one port only, or `loopback` (`localhost`, 127.0.0.0/8, ::1). Names are
compared as written, never resolved: an IP address is allowed only if it is listed itself.
A secret goes only over https, except to loopback. Env vars starting with `LIVEKIT_`,
`MONGO_`, `ADMIN_` or `EGRESS_` are never sendable, whatever the policy says.

Which headers a config may set is the policy's too, and not the operator's to widen: never a
connection-level one (CONNECTION_HEADERS: `Host`, `Content-Length`, `Transfer-Encoding`,
`Proxy-*`...). The policy checks the URL's host, so a `Host` header would send the request to
another virtual host behind the same address; the framing ones would let a config split or
smuggle requests. `header_problems` refuses them at write time and `check_headers` at call
time, for tools, MCP servers and routing hooks alike.

The admin API and seeding check every write against the policy (`config_problems`, through
`ConfigStore`, which refuses the write with `ConfigRefused`); the worker checks again when it
builds a model or calls a tool (`EgressPolicy.check`), so a config that slipped in by hand is
refused there too. A config's tools count like its providers: an `http` tool's or MCP
server's URL is a destination without a secret, and each header taking `{"env": NAME}` sends
that secret to the URL's host. Webhooks ask the same `check`, with their own URLs.
"""

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_configs.models import AgentConfig, EnvVarName, LLMSpec, STTSpec, TTSSpec
from agent_configs.tools import HeaderValue, HttpTool, McpTools

NEVER_SENDABLE_PREFIXES = ("LIVEKIT_", "MONGO_", "ADMIN_", "EGRESS_")
"""The worker's own credentials (and the policy itself) are never a config's to send."""

LOOPBACK = "loopback"

DEFAULT_SECRETS = {"OPENAI_API_KEY": ["api.openai.com"], "DEEPGRAM_API_KEY": ["api.deepgram.com"]}

Kind = Literal["llm", "stt", "tts"]


class EgressRefused(ValueError):
    """One outbound call the policy does not allow; `field` is the config path to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Destination:
    """Where a provider sends a spec's requests and which env var's value goes with them.

    `url` None: the operator's own endpoint (e.g. `LOCAL_LLM_URL`), not the config's choice."""

    url: str | None
    secret_env: str | None


@dataclass(frozen=True)
class ProviderDefaults:
    """A provider's own endpoint and key variable, used when a spec does not name them."""

    url: str | None
    secret_env: str | None
    base_url_used: bool = True
    """False for a provider that ignores `base_url` (its requests always go to `url`)."""


_PROVIDERS: dict[tuple[Kind, str], ProviderDefaults] = {
    # A self-hosted OpenAI-compatible server usually takes no key: only `api_key_env` sends one.
    ("llm", "openai"): ProviderDefaults("https://api.openai.com/v1", "OPENAI_API_KEY"),
    ("llm", "local"): ProviderDefaults(None, None),
    ("stt", "local"): ProviderDefaults(None, None),
    ("tts", "local"): ProviderDefaults(None, None),
    ("stt", "deepgram"): ProviderDefaults(
        "https://api.deepgram.com", "DEEPGRAM_API_KEY", base_url_used=False
    ),
    ("tts", "deepgram"): ProviderDefaults(
        "https://api.deepgram.com", "DEEPGRAM_API_KEY", base_url_used=False
    ),
}


def register_provider(kind: Kind, provider: str, defaults: ProviderDefaults) -> None:
    """A third-party provider tells the policy where it sends requests by default, so writes
    of configs using it are checked like the built-ins."""
    _PROVIDERS[(kind, provider)] = defaults


def destination(kind: Kind, spec: LLMSpec | STTSpec | TTSSpec) -> Destination | None:
    """Where `spec` makes the worker send requests; None for a provider this code does not know
    (its own code asks `check` with its real URL when it is built)."""
    defaults = _PROVIDERS.get((kind, spec.provider))
    if defaults is None:
        return None
    if kind == "llm" and spec.provider == "openai" and spec.base_url and not spec.api_key_env:
        return Destination(spec.base_url, None)
    url = spec.base_url if defaults.base_url_used and spec.base_url else defaults.url
    return Destination(url, spec.api_key_env or defaults.secret_env)


def _is_loopback(host: str) -> bool:
    # `*.localhost` names are not taken for loopback: RFC 6761 says they should resolve there,
    # but the resolver decides, and glibc with `hosts: files dns` (this image's) sends
    # `evil.localhost` to DNS, which may answer any address. Resolving here would not help
    # either: the client resolves again when it connects (a rebinding window). So such a name
    # is an ordinary name, reachable only if the operator lists it; `localhost` itself is the
    # hosts file's, which the operator owns.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_matches(pattern: str, host: str, port: int | None) -> bool:
    if pattern == LOOPBACK:
        return _is_loopback(host)
    name, _, wanted_port = pattern.rpartition(":") if _has_port(pattern) else (pattern, "", "")
    if wanted_port and (port is None or int(wanted_port) != port):
        return False
    name = name.strip("[]")
    if name.startswith("*."):
        return host.endswith(name[1:])
    return host == name


def _has_port(pattern: str) -> bool:
    """`host:443` or `[::1]:443`; a bare IPv6 address has colons but no port."""
    head, sep, tail = pattern.rpartition(":")
    if not sep or not tail.isdigit():
        return False
    return head.endswith("]") if head.startswith("[") else ":" not in head


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _host_pattern(value: str) -> str:
    pattern = value.strip().lower()
    if not pattern:
        raise ValueError("an empty host")
    if "/" in pattern or "@" in pattern:
        raise ValueError(
            f"'{value}' is not a host (no scheme, path or credentials: e.g. api.openai.com)"
        )
    return pattern


CONNECTION_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "http2-settings",
    }
)
"""Headers the HTTP client writes from the URL and the body (lower case); with `Proxy-*`
(CONNECTION_HEADER_PREFIXES) never a config's to set."""
CONNECTION_HEADER_PREFIXES = ("proxy-",)
CONNECTION_HEADER = (
    "a connection-level header is never a config's to set (the client writes it from the URL "
    "and the body, and the egress policy checks the URL's host)"
)


def is_connection_header(name: str) -> bool:
    """Case-insensitive, as HTTP header names are."""
    lowered = name.lower()
    return lowered in CONNECTION_HEADERS or lowered.startswith(CONNECTION_HEADER_PREFIXES)


def header_problems(names: Iterable[str], *, field: str) -> list[EgressRefused]:
    """A refusal for each connection-level header among `names`; `field` is the headers' path
    (`tools.0.headers`), each refusal names its header (`tools.0.headers.Host`)."""
    return [
        EgressRefused(f"{field}.{name}", CONNECTION_HEADER)
        for name in names
        if is_connection_header(name)
    ]


def check_headers(names: Iterable[str], *, field: str) -> None:
    """Raise EgressRefused for the first connection-level header: the call-time check, for a
    config written by hand past the write-time one."""
    problems = header_problems(names, field=field)
    if problems:
        raise problems[0]


class EgressPolicy(BaseSettings):
    """The operator's policy (`EGRESS_SECRETS`, `EGRESS_HOSTS`). Construct it once per process."""

    model_config = SettingsConfigDict(
        env_prefix="EGRESS_", env_file=".env", extra="ignore", frozen=True
    )

    secrets: dict[EnvVarName, list[str]] = Field(
        default_factory=lambda: {name: list(hosts) for name, hosts in DEFAULT_SECRETS.items()},
        description="Env var -> hosts its value may be sent to.",
    )
    hosts: list[str] = Field(
        default_factory=lambda: [LOOPBACK],
        description="Hosts configs may make the worker call without a secret.",
    )

    @field_validator("secrets")
    @classmethod
    def _secret_hosts(cls, secrets: dict[str, list[str]]) -> dict[str, list[str]]:
        return {name: [_host_pattern(h) for h in hosts] for name, hosts in secrets.items()}

    @field_validator("hosts")
    @classmethod
    def _reachable_hosts(cls, hosts: list[str]) -> list[str]:
        return [_host_pattern(h) for h in hosts]

    def reachable_hosts(self) -> Iterator[str]:
        yield from self.hosts
        for hosts in self.secrets.values():
            yield from hosts

    def check(self, url: str, secret_env: str | None = None, *, field: str) -> None:
        """Raise EgressRefused (naming `field`) unless a request to `url`, carrying the value of
        `secret_env` if given, is allowed."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port or _default_port(parts.scheme)
        except ValueError:
            raise EgressRefused(field, "is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise EgressRefused(field, "needs an http(s) URL with a host")
        if secret_env is not None:
            self._check_secret(secret_env, parts.scheme, host, port, field)
        if not any(_host_matches(p, host, port) for p in self.reachable_hosts()):
            raise EgressRefused(
                field,
                f"host '{host}' is not allowed by the egress policy (EGRESS_HOSTS / EGRESS_SECRETS)",
            )

    def _check_secret(self, secret_env: str, scheme: str, host: str, port: int, field: str) -> None:
        secret_field = (
            field.rsplit(".", 1)[0] + ".api_key_env" if field.endswith(".base_url") else field
        )
        if secret_env.upper().startswith(NEVER_SENDABLE_PREFIXES):
            raise EgressRefused(
                secret_field, f"{secret_env} is a Switchboard credential and is never sent anywhere"
            )
        allowed = self.secrets.get(secret_env)
        if allowed is None:
            raise EgressRefused(
                secret_field,
                f"{secret_env} is not a key configs may use (the operator lists them in EGRESS_SECRETS)",
            )
        if not any(_host_matches(p, host, port) for p in allowed):
            raise EgressRefused(
                field, f"{secret_env} may only be sent to {', '.join(allowed)}, not to '{host}'"
            )
        if scheme != "https" and not _is_loopback(host):
            raise EgressRefused(field, f"{secret_env} would be sent unencrypted: use https")

    def check_destination(self, destination: Destination | None, *, field: str) -> None:
        """`field` is the spec's path (`llm`, `llm.fallback.0`, `stt`)."""
        if destination is None or destination.url is None:
            return
        self.check(destination.url, destination.secret_env, field=f"{field}.base_url")

    def config_problems(self, config: AgentConfig) -> list[EgressRefused]:
        """Every outbound call `config` would make that the policy refuses (empty: all allowed):
        its models' endpoints and keys, then its tools' URLs and header secrets."""
        specs: list[tuple[str, Kind, Any]] = [("llm", "llm", config.llm)]
        specs += [(f"llm.fallback.{i}", "llm", spec) for i, spec in enumerate(config.llm.fallback)]
        specs += [
            (name, name, getattr(config, name)) for name in ("stt", "tts") if getattr(config, name)
        ]
        problems = []
        for path, kind, spec in specs:
            try:
                self.check_destination(destination(kind, spec), field=path)
            except EgressRefused as exc:
                problems.append(exc)
            problems.extend(self._unknown_provider_key(path, kind, spec))
        for index, tool in enumerate(config.tools):
            if isinstance(tool, HttpTool | McpTools):
                problems.extend(self.tool_problems(tool.url, tool.headers, field=f"tools.{index}"))
        return problems

    def tool_problems(
        self, url: str, headers: dict[str, HeaderValue], *, field: str
    ) -> list[EgressRefused]:
        """A tool's URL (`{placeholders}` and all) as a keyless destination, each header from
        an env var as that secret going to the URL's host, and no connection-level header.
        `field` is the tool's path."""
        try:
            netloc = urlsplit(url).netloc
        except ValueError:
            netloc = ""  # `check` below names it as not a valid URL
        if "{" in netloc:
            # The model fills placeholders: one in the host would let it pick where requests go.
            return [
                EgressRefused(
                    f"{field}.url", "the host cannot come from a {placeholder}: write it out"
                )
            ]
        problems = []
        try:
            self.check(url, field=f"{field}.url")
        except EgressRefused as exc:
            problems.append(exc)
        problems += header_problems(headers, field=f"{field}.headers")
        for name, header in headers.items():
            if header.env is None:
                continue
            try:
                self.check(url, header.env, field=f"{field}.headers.{name}.env")
            except EgressRefused as exc:
                problems.append(exc)
        return problems

    def _unknown_provider_key(self, path: str, kind: Kind, spec: Any) -> list[EgressRefused]:
        """A provider this code does not know still may not name a key the policy never sends."""
        if (kind, spec.provider) in _PROVIDERS or spec.api_key_env is None:
            return []
        name = spec.api_key_env
        if name.upper().startswith(NEVER_SENDABLE_PREFIXES) or name not in self.secrets:
            return [EgressRefused(f"{path}.api_key_env", f"{name} is not a key configs may use")]
        return []

    def refusal(self, config: AgentConfig) -> str | None:
        """One line for a routing trail: why this config may not run here, or None. Every
        `config_problems` counts, so a stored config whose tool URL or header secret the policy
        (since) refuses is unavailable for routing, as one with a refused model endpoint is."""
        problems = self.config_problems(config)
        return f"refused by the egress policy: {problems[0]}" if problems else None
