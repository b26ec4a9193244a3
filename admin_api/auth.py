"""API keys: stored hashed, compared in constant time, cached briefly, each with one role.

A key is a random bearer token (`sbk_` + 32 random bytes, URL-safe). Only its SHA-256 is
stored (collection `api_keys`), so a database dump reveals no usable key; a random 256-bit
token needs no slow password hash. Authentication compares the presented token's digest with
every active key's digest using `hmac.compare_digest`, without stopping at the first match,
so the time taken says nothing about which key (or how much of one) matched.

Keys are read into memory and re-read every `ADMIN_API_KEY_CACHE_TTL_S` seconds (default 5),
so a request costs no database round trip; a revocation applies on every replica within that
time. An unknown token triggers at most one early re-read per second, so a key created a
moment ago works at once without letting bad tokens hammer the database.

Documents: `{_id, name, name_key, role, scopes, digest, prefix, created_at, revoked_at}`.
`name_key` is unique: it equals `name` while the key is active and gets the key id appended
when it is revoked, which frees the name for a new key (FerretDB v1 has no partial unique
indexes).

Scopes widen what a token-role key may ask of `POST /token`: by default the server names the
room and the participant identity, so a key that leaked into a browser cannot join a room
whose name it learned or take another participant's seat. `token:room` lets a key name the
room, `token:identity` the identity (a backend that maps its own users to rooms), and
`token:agent` may pin the agent type and version a room gets, past the routing rules (the
console's playground; see agent_configs/routing/pin.py). Admin keys
have every scope implicitly; a key stored before scopes existed (no `scopes` field) has none,
and a scope name this version does not know is ignored rather than failing every request.
"""

import asyncio
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from agent_configs.api_keys import API_KEYS, digest_of
from agent_configs.database import bson_now, database_errors

TOKEN_PREFIX = "sbk_"
BOOTSTRAP_KEY_NAME = "bootstrap"
_MISS_RELOAD_INTERVAL_S = 1.0


class Role(StrEnum):
    ADMIN = "admin"  # everything
    VIEWER = "viewer"  # reads, dry runs (resolve, validate)
    TOKEN = "token"  # only POST /token


class Scope(StrEnum):
    TOKEN_ROOM = "token:room"  # POST /token may name `room`
    TOKEN_IDENTITY = "token:identity"  # POST /token may name `identity`
    TOKEN_AGENT = (
        "token:agent"  # POST /token may pin `agent` (any type, any version: the playground)
    )


SCOPED_ROLES = frozenset({Role.TOKEN})
"""Roles a scope may be given to: admin has every scope already, viewer cannot mint tokens."""


class KeyNameTaken(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"an active API key named '{name}' already exists; revoke it or pick another name"
        )


class KeyNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"no active API key named '{name}'")


class ScopesNotForRole(Exception):
    def __init__(self, role: Role) -> None:
        why = "has every scope already" if role == Role.ADMIN else "cannot mint tokens"
        super().__init__(f"scopes are for token keys only: a {role} key {why}")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    digest: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    scopes: frozenset[Scope] = frozenset()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: Scope) -> bool:
        return self.role == Role.ADMIN or scope in self.scopes

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "ApiKey":
        return cls(
            key_id=document["_id"],
            name=document["name"],
            role=Role(document["role"]),
            digest=document["digest"],
            prefix=document.get("prefix", ""),
            created_at=document["created_at"],
            revoked_at=document.get("revoked_at"),
            scopes=_known_scopes(document.get("scopes") or ()),
        )


def _known_scopes(names: Iterable[object]) -> frozenset[Scope]:
    known = {str(scope) for scope in Scope}
    return frozenset(Scope(name) for name in names if isinstance(name, str) and name in known)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """Creates, revokes and lists keys, and authenticates bearer tokens against them."""

    def __init__(
        self,
        database: AsyncDatabase,
        cache_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = database[API_KEYS]
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._active: tuple[ApiKey, ...] = ()
        self._loaded_at = float("-inf")
        self._last_miss_reload = float("-inf")
        self._lock = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        with database_errors():
            await self._keys.create_index([("name_key", ASCENDING)], unique=True)
            await self._keys.create_index([("digest", ASCENDING)])

    # -- authentication --------------------------------------------------------------------

    async def authenticate(self, token: str) -> ApiKey | None:
        digest = digest_of(token)
        if self._clock() - self._loaded_at >= self._cache_ttl_s:
            await self._reload()
        found = _match(digest, self._active)
        if found is None and self._clock() - self._last_miss_reload >= _MISS_RELOAD_INTERVAL_S:
            self._last_miss_reload = self._clock()
            await self._reload(force=True)
            found = _match(digest, self._active)
        return found

    def forget_cache(self) -> None:
        self._loaded_at = float("-inf")

    async def _reload(self, force: bool = False) -> None:
        async with self._lock:
            if not force and self._clock() - self._loaded_at < self._cache_ttl_s:
                return  # another request reloaded while this one waited
            with database_errors():
                documents = await self._keys.find({"revoked_at": None}).to_list(length=None)
            self._active = tuple(ApiKey.from_document(d) for d in documents)
            self._loaded_at = self._clock()

    # -- management ------------------------------------------------------------------------

    async def create(
        self, name: str, role: Role, token: str | None = None, scopes: Iterable[Scope] = ()
    ) -> tuple[ApiKey, str]:
        """A new key and its token. The token is shown once and never stored."""
        granted = frozenset(scopes)
        if granted and role not in SCOPED_ROLES:
            raise ScopesNotForRole(role)
        token = token or new_token()
        key = ApiKey(
            key_id=f"key_{uuid.uuid4().hex[:16]}",
            name=name,
            role=role,
            digest=digest_of(token),
            prefix=token[:8],
            created_at=bson_now(),
            scopes=granted,
        )
        document = {
            "_id": key.key_id,
            "name": name,
            "name_key": name,
            "role": str(role),
            "scopes": sorted(str(scope) for scope in granted),
            "digest": key.digest,
            "prefix": key.prefix,
            "created_at": key.created_at,
            "revoked_at": None,
        }
        try:
            with database_errors():
                await self._keys.insert_one(document)
        except DuplicateKeyError:
            raise KeyNameTaken(name) from None
        self.forget_cache()
        return key, token

    async def revoke(self, name: str) -> ApiKey:
        with database_errors():
            document = await self._keys.find_one({"name_key": name, "revoked_at": None})
            if document is None:
                raise KeyNotFound(name)
            revoked_at = bson_now()
            await self._keys.update_one(
                {"_id": document["_id"]},
                {"$set": {"revoked_at": revoked_at, "name_key": f"{name}~{document['_id']}"}},
            )
        self.forget_cache()
        return ApiKey.from_document(document | {"revoked_at": revoked_at})

    async def list_keys(self, include_revoked: bool = True) -> list[ApiKey]:
        query: dict[str, Any] = {} if include_revoked else {"revoked_at": None}
        with database_errors():
            documents = (
                await self._keys.find(query).sort("created_at", ASCENDING).to_list(length=None)
            )
        return [ApiKey.from_document(d) for d in documents]

    async def bootstrap(self, token: str) -> ApiKey | None:
        """An admin key with the given value, only when no key exists at all."""
        with database_errors():
            if await self._keys.find_one({}, {"_id": 1}) is not None:
                return None
        try:
            key, _ = await self.create(BOOTSTRAP_KEY_NAME, Role.ADMIN, token)
        except KeyNameTaken:
            return None  # another replica bootstrapped first
        return key


def _match(digest: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """Compare against every key, never stopping early: constant time for a given key count."""
    found = None
    for key in keys:
        if hmac.compare_digest(key.digest, digest):
            found = key
    return found
