"""GET /models/local: the model every `local` agent type really runs on, from the settings
the admin API shares with the worker (SWITCHBOARD_MODEL_PROFILE, LOCAL_LLM_*)."""

import httpx

from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app

LOCAL = "/api/v1/models/local"


async def test_the_embedded_model_is_reported_as_such(
    endpoints: Endpoints, database_name: str, keys: Keys
) -> None:
    settings = admin_settings(
        endpoints, database_name, local_llm_url="http://127.0.0.1:8088/v1", local_llm_embedded=True
    )
    async with running_app(settings) as (_, api):
        answer = await api.get(LOCAL, headers=keys.header("viewer"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "profile": "local",
        "url": "http://127.0.0.1:8088/v1",
        "model": None,
        "embedded": True,
    }


async def test_the_operators_own_server_and_model_are_reported(
    endpoints: Endpoints, database_name: str, keys: Keys
) -> None:
    settings = admin_settings(
        endpoints,
        database_name,
        local_llm_url="http://127.0.0.1:11434/v1",
        local_llm_model="llama3.2:3b",
    )
    async with running_app(settings) as (_, api):
        answer = await api.get(LOCAL, headers=keys.header("admin"))
        cloud = admin_settings(endpoints, database_name, model_profile="cloud")
    assert answer.json() == {
        "profile": "local",
        "url": "http://127.0.0.1:11434/v1",
        "model": "llama3.2:3b",
        "embedded": False,
    }
    async with running_app(cloud) as (_, api):
        moved = (await api.get(LOCAL, headers=keys.header("admin"))).json()
    assert moved == {
        "profile": "cloud",
        "url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "embedded": False,
    }


async def test_token_keys_may_not_read_it(api: httpx.AsyncClient, keys: Keys) -> None:
    assert (await api.get(LOCAL, headers=keys.header("token"))).status_code == 403
