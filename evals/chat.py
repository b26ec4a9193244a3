"""One small OpenAI-compatible chat client for the models that help a run: the judge
(evals/judge.py) and the simulated caller (evals/caller.py).

Each is configured by the operator's environment only (`EVALS_JUDGE_*`, `EVALS_CALLER_*`),
never by a suite, and every request goes the way the worker's own calls go:

- the egress policy (agent_configs/egress.py) checks the URL's host, and the key's variable
  (`..._API_KEY_ENV` names it; the value is read at call time) against the hosts it may go to,
  before each request: a refused one never leaves the process;
- the key is a bearer header and nothing else: never in an error, a log line or the stored run
  (the run records `host/model` only);
- no proxy or netrc from the environment (`trust_env=False`), no redirect followed, the reply
  asked for uncompressed and read at most `max_bytes` (a compressed one is refused unread:
  its size after decoding cannot be bounded), the whole request bounded by `timeout_s`.
"""

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings

from agent_configs.egress import EgressPolicy, EgressRefused
from agent_configs.models import EnvVarName

DEFAULT_MAX_BYTES = 256 * 1024
"""A chat completion of a few hundred tokens is a few KB; anything near this is not one."""


class ChatModelError(Exception):
    """The model could not be asked or did not answer usably; the message says why (never the
    key's value)."""


class ChatModelSettings(BaseSettings):
    """Subclassed with an `env_prefix` per role (EVALS_JUDGE_, EVALS_CALLER_)."""

    base_url: str | None = Field(
        default=None, description="The OpenAI-compatible API's base URL (…/v1)."
    )
    model: str | None = Field(default=None, description="The model name sent with each request.")
    api_key_env: EnvVarName | None = Field(
        default=None,
        description="The NAME of the env var holding the key (the egress policy must allow it "
        "for the URL's host: EGRESS_SECRETS). Unset: no key is sent.",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=600, description="Per request, in all.")
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024, le=16 * 1024 * 1024)
    max_tokens: int = Field(default=200, ge=1, le=4096)


@dataclass(frozen=True)
class ChatModel:
    role: str
    """Names the model in errors and in the variables to fix (`judge` -> EVALS_JUDGE_*)."""
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_bytes: int = DEFAULT_MAX_BYTES
    max_tokens: int = 200
    policy: EgressPolicy | None = None
    """None: the process's policy, read from the environment when a request is made."""

    @classmethod
    def from_settings(cls, role: str, settings: ChatModelSettings) -> "ChatModel | None":
        if not settings.base_url:
            return None
        return cls(
            role=role,
            base_url=settings.base_url,
            model=settings.model or "default",
            api_key_env=settings.api_key_env,
            timeout_s=settings.timeout_s,
            max_bytes=settings.max_bytes,
            max_tokens=settings.max_tokens,
        )

    @property
    def name(self) -> str:
        """What a run records: the endpoint's host (its provider) and the model, no secret."""
        return f"{urlsplit(self.base_url).netloc or self.base_url}/{self.model}"

    @property
    def _variable(self) -> str:
        return f"EVALS_{self.role.upper()}_BASE_URL"

    async def complete(
        self, messages: list[dict[str, str]], *, temperature: float, json_object: bool = False
    ) -> str:
        """The first choice's text. `json_object`: OpenAI's JSON mode (llama.cpp, vLLM and
        Ollama's OpenAI API take it too)."""
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            (self.policy or EgressPolicy()).check(url, self.api_key_env, field=self._variable)
        except EgressRefused as exc:
            raise ChatModelError(f"the {self.role} model is refused by the egress policy: {exc}")
        headers = {"Accept-Encoding": "identity"}
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ChatModelError(
                    f"the {self.role} model's key variable {self.api_key_env} is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": self.max_tokens,
            "stream": False,
        }
        if json_object:
            body["response_format"] = {"type": "json_object"}
        return _first_choice(self.role, await self._post(url, body, headers))

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
                client.stream(
                    "POST", url, json=body, headers=headers, timeout=self.timeout_s
                ) as response,
            ):
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise ChatModelError(
                        f"the {self.role} model answered compressed ({encoding}) although an "
                        "uncompressed answer was asked for: not read"
                    )
                content = bytearray()
                async for chunk in response.aiter_raw():
                    content += chunk
                    if len(content) > self.max_bytes:
                        raise ChatModelError(
                            f"the {self.role} model's answer is larger than {self.max_bytes} "
                            f"bytes (EVALS_{self.role.upper()}_MAX_BYTES): the rest was not read"
                        )
                if response.status_code != 200:
                    raise ChatModelError(
                        f"the {self.role} model answered HTTP {response.status_code}"
                        + (" (redirects are not followed)" if response.is_redirect else "")
                        + f": {_shown(bytes(content))}"
                    )
                return bytes(content)
        except TimeoutError:
            raise ChatModelError(
                f"the {self.role} model did not answer within {self.timeout_s:g} s "
                f"(EVALS_{self.role.upper()}_TIMEOUT_S)"
            ) from None
        except httpx.HTTPError as exc:
            raise ChatModelError(
                f"the {self.role} model at {urlsplit(url).netloc} is unreachable: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _shown(content: bytes) -> str:
    text = content.decode("utf-8", errors="replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


def _first_choice(role: str, content: bytes) -> str:
    try:
        answer = json.loads(content)
        text = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ChatModelError(
            f"the {role} model's answer is not an OpenAI chat completion: {_shown(content)}"
        ) from None
    if not isinstance(text, str):
        raise ChatModelError(f"the {role} model's answer has no text content")
    return text
