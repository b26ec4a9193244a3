"""Webhook signing secrets: generated ones kept encrypted, env-named ones checked by the egress policy.

A subscription's `secret` is one of two kinds (agent_configs/cloudevents.py names the collection):

- `{"kind": "generated", "ciphertext": ..., "prefix": "whsec_ab12"}`: made by the admin API
  (`generate()`: `whsec_` + base64 of 32 random bytes, the Standard Webhooks format Svix and
  Stripe use), shown once to whoever created or rotated it, stored only as Fernet ciphertext
  under the operator's key `WEBHOOK_ENCRYPTION_KEY`. Anyone who can read MongoDB (a backup,
  a replica, a viewer of the collection) gets ciphertext and a 4-character prefix, not a key
  that forges signatures.
- `{"kind": "env", "env": "NAME"}`: the dispatcher reads `NAME` from its environment, the
  way configs name their API keys; the egress policy must list `NAME` for the URL's host
  (EGRESS_SECRETS), exactly as if the value were sent there, so an admin key cannot make a
  receiver of its choosing an oracle for the operator's other secrets.

`WEBHOOK_ENCRYPTION_KEY` is a Fernet key (`Fernet.generate_key()`); several, comma-separated,
rotate it: the first encrypts, every one decrypts (MultiFernet), so old ciphertexts keep
working until each subscription's secret is rotated.

After a rotation `previous_secret` (same shape + `valid_until`) stays valid for the grace
period: `signing_secrets` returns both, and the dispatcher sends a signature for each.

The functions take the key and the policy as keywords; without them they read
`WEBHOOK_ENCRYPTION_KEY` and the `EGRESS_*` policy from the environment (what the dispatcher
runs with). Nothing here logs a secret, and no exception message holds one.
"""

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from agent_configs.egress import EgressPolicy

KEY_ENV = "WEBHOOK_ENCRYPTION_KEY"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SHOWN_PREFIX_CHARS = len(SECRET_PREFIX) + 4
"""`whsec_ab12`: enough to tell two secrets apart in a list, 24 of 256 bits."""

GENERATED = "generated"
ENV = "env"

Key = str | SecretStr | None


class SecretUnavailable(RuntimeError):
    """A secret cannot be used here; the message says what the operator should set, never a value."""


class EncryptionKeyMissing(SecretUnavailable):
    def __init__(self) -> None:
        super().__init__(
            f"{KEY_ENV} is not set: set it to a Fernet key (python -c 'from cryptography.fernet import "
            f"Fernet; print(Fernet.generate_key().decode())') for the admin API and the dispatcher, "
            "or name an env var holding the secret instead (secret_env)"
        )


def generate() -> str:
    """A new signing secret, `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def shown_prefix(secret: str) -> str:
    return secret[:SHOWN_PREFIX_CHARS]


def _fernet(key: Key) -> MultiFernet:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if key is None:
        key = os.environ.get(KEY_ENV)
    parts = [part.strip() for part in (key or "").split(",") if part.strip()]
    if not parts:
        raise EncryptionKeyMissing()
    try:
        return MultiFernet([Fernet(part) for part in parts])
    except (ValueError, binascii.Error):
        raise SecretUnavailable(
            f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes; several are comma-separated)"
        ) from None


def check_key(key: Key = None) -> None:
    """Raise SecretUnavailable unless `key` (or WEBHOOK_ENCRYPTION_KEY) can encrypt."""
    _fernet(key)


def encrypt(secret: str, *, key: Key = None) -> str:
    return _fernet(key).encrypt(secret.encode()).decode()


def decrypt(ciphertext: str, *, key: Key = None) -> str:
    try:
        return _fernet(key).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnavailable(
            f"the stored secret does not decrypt with {KEY_ENV}: the key changed without keeping the old "
            "one (list both, new first, comma-separated) or the secret was rotated under another key"
        ) from None


def generated_secret(secret: str, *, key: Key = None) -> dict[str, Any]:
    """The stored form of a generated secret (ciphertext and the shown prefix only)."""
    return {
        "kind": GENERATED,
        "ciphertext": encrypt(secret, key=key),
        "prefix": shown_prefix(secret),
    }


def env_secret(env: str) -> dict[str, Any]:
    return {"kind": ENV, "env": env}


def check_env_secret(
    url: str, env: str, *, policy: EgressPolicy, field: str = "secret_env"
) -> None:
    """Raise EgressRefused (naming `field`) unless the policy lets `env`'s value go to `url`'s host."""
    policy.check(url, env, field=field)


def with_rotation(
    subscription: Mapping[str, Any], new_secret: dict[str, Any], grace: timedelta, now: datetime
) -> dict[str, Any]:
    """The `secret` / `previous_secret` fields after a rotation: the current secret stays valid
    for `grace` (none: it stops at once)."""
    previous = None
    if grace > timedelta(0):
        previous = {**subscription["secret"], "valid_until": now + grace}
    return {"secret": new_secret, "previous_secret": previous}


def signing_secrets(
    subscription: Mapping[str, Any],
    now: datetime,
    *,
    key: Key = None,
    policy: EgressPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The secrets to sign a delivery to `subscription` with: the current one, then the previous
    one while its grace lasts. Raises SecretUnavailable (key or env var missing, undecryptable)
    or EgressRefused (an env-named secret the policy does not allow for the URL's host)."""
    found = [_plaintext(subscription["secret"], subscription["url"], key, policy, environ)]
    previous = subscription.get("previous_secret")
    if previous and _aware(previous["valid_until"]) > _aware(now):
        found.append(
            _plaintext(previous, subscription["url"], key, policy, environ, field="previous_secret")
        )
    return found


def _plaintext(
    stored: Mapping[str, Any],
    url: str,
    key: Key,
    policy: EgressPolicy | None,
    environ: Mapping[str, str] | None,
    field: str = "secret",
) -> str:
    kind = stored.get("kind")
    if kind == GENERATED:
        return decrypt(stored["ciphertext"], key=key)
    if kind == ENV:
        name = stored["env"]
        check_env_secret(url, name, policy=policy or EgressPolicy(), field=f"{field}.env")
        value = (os.environ if environ is None else environ).get(name, "")
        if not value:
            raise SecretUnavailable(f"{name} (the signing secret of this subscription) is not set")
        _check_format(name, value)
        return value
    raise SecretUnavailable(f"{field}: unknown secret kind {kind!r}")


def _check_format(name: str, value: str) -> None:
    """Standard Webhooks secrets are base64 (after `whsec_`): a value that is not could not sign."""
    try:
        base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except (ValueError, binascii.Error):
        raise SecretUnavailable(
            f"{name} does not hold a signing secret (whsec_ + base64)"
        ) from None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
