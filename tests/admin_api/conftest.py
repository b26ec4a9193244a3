"""The admin API app on the real FerretDB (a fresh database per test), called through httpx.

`api` is an httpx AsyncClient on the ASGI app with its lifespan run, so startup (indexes,
bootstrap key) happens as in production; `keys` holds one bearer token per role, and
`token_scoped`, a token key that may also name the room and identity of a token.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.app import create_app
from admin_api.auth import KeyRing, Role, Scope
from admin_api.settings import AdminSettings
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.store import ConfigStore
from devstack import Endpoints
from scripts.setup_agents import seed


@dataclass(frozen=True)
class Keys:
    admin: str
    viewer: str
    token: str
    token_scoped: str

    def header(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


def admin_settings(endpoints: Endpoints, database_name: str, **changes: Any) -> AdminSettings:
    """Settings for a test app: no `.env`, no caches that would hide a change from the test."""
    values: dict[str, Any] = {
        "mongo_uri": endpoints.mongo_uri,
        "mongo_db": database_name,
        "livekit_url": endpoints.livekit_url,
        "livekit_api_key": endpoints.livekit_api_key,
        "livekit_api_secret": endpoints.livekit_api_secret,
        "switchboard_dev_mode": endpoints.uses_dev_keys,  # the app refuses the dev keys otherwise
        "admin_api_key_cache_ttl_s": 0.0,
        "routing_rules_ttl_s": 0.0,
    }
    return AdminSettings(_env_file=None, **(values | changes))


@asynccontextmanager
async def running_app(settings: AdminSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan, and a client on it (ASGITransport runs no lifespan itself)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            yield app, client


async def make_keys(database: AsyncDatabase) -> Keys:
    keyring = KeyRing(database)
    await keyring.ensure_indexes()
    tokens = {role: (await keyring.create(f"test-{role}", role))[1] for role in Role}
    _, scoped = await keyring.create("test-token-scoped", Role.TOKEN, scopes=tuple(Scope))
    return Keys(
        admin=tokens[Role.ADMIN],
        viewer=tokens[Role.VIEWER],
        token=tokens[Role.TOKEN],
        token_scoped=scoped,
    )


async def seed_defaults(database: AsyncDatabase) -> None:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors
    await seed(ConfigStore(database), configs)


@pytest.fixture
def settings(endpoints: Endpoints, database_name: str) -> AdminSettings:
    return admin_settings(endpoints, database_name)


@pytest.fixture
async def app_and_api(
    settings: AdminSettings, database: AsyncDatabase
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings) as running:
        yield running


@pytest.fixture
def api(app_and_api: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_api[1]


@pytest.fixture
async def keys(database: AsyncDatabase) -> Keys:
    return await make_keys(database)


@pytest.fixture
async def seeded(database: AsyncDatabase) -> None:
    """The four built-in agent types (support, sales, onboarding, interview) at version 1."""
    await seed_defaults(database)
