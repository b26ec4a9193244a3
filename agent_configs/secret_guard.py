"""Keeps secret values out of agent configs.

Configs are stored in MongoDB and shown by the admin API, so they may only *name* where a
secret lives (`api_key_env: OPENAI_API_KEY`), never hold one. Every string in a config passes
through `reject_secret_value`; a hit fails validation at that field's path.
"""

import re

# Well-known key shapes, each with a human name for the error message.
_KNOWN_KEY_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a credential in a URL", re.compile(r"://[^/\s:@]+:[^/\s@]+@")),
    (
        "a credential in a URL query",
        re.compile(r"[?&](?:api[_-]?key|key|token|secret|password|access_token)=[^&\s]{6,}", re.I),
    ),
]

# A long unbroken run of letters AND digits (40-hex Deepgram keys, base64 secrets): prose,
# slugs like `support-agent-v1` and env var names never look like this.
_OPAQUE_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=]{32,}")


def secret_kind(value: str) -> str | None:
    """Name the kind of secret `value` appears to contain, or None when it looks clean."""
    for kind, pattern in _KNOWN_KEY_SHAPES:
        if pattern.search(value):
            return kind
    for token in _OPAQUE_TOKEN.findall(value):
        has_letter = any(c.isalpha() for c in token)
        digits = sum(c.isdigit() for c in token)
        if has_letter and digits >= 4:
            return "an opaque token that looks like a key"
    return None


def reject_secret_value(value: str) -> str:
    """Pydantic after-validator: pass clean strings through, refuse anything key-like."""
    kind = secret_kind(value)
    if kind is not None:
        raise ValueError(
            f"looks like {kind}; secrets are never stored in configs - "
            "put the value in an environment variable and name it in `api_key_env`"
        )
    return value
