"""The `webhook` routing strategy over HTTP: a refused URL is a 422 at its field and never
called; resolve explains a decision the hook made, variables included."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.admin_api.conftest import Keys
from tests.agent_configs.routing.hook_server import HookServer

RULES = "/api/v1/routing"
RESOLVE = "/api/v1/routing/resolve"

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = await HookServer(
        answer={"agent_id": "sales-agent-v1", "variables": {"plan": "gold"}}
    ).start()
    yield server
    await server.stop()


def chain(url: str) -> list[dict[str, object]]:
    return [
        {"strategy": "webhook", "params": {"url": url, "timeout_s": 1.0}},
        {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
    ]


async def test_a_hook_url_the_egress_policy_refuses_is_a_422_naming_it_and_is_never_called(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGRESS_HOSTS", json.dumps(["hooks.example"]))
    refused = await api.put(
        RULES, json={"chain": chain(hook.url)}, headers=keys.header("admin") | {"If-Match": '"0"'}
    )
    assert refused.status_code == 422, refused.text
    problems = {p["field"]: p["message"] for p in refused.json()["errors"]}
    assert list(problems) == ["chain.0.params.url"]
    assert "host '127.0.0.1' is not allowed by the egress policy" in problems["chain.0.params.url"]
    assert (await api.get(RULES, headers=keys.header("viewer"))).json()["version"] == 0
    assert hook.requests == []


async def test_resolve_explains_what_the_hook_chose_with_its_variables(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    body = {
        "metadata": {"purpose": "support", "user_id": "u-1"},
        "rules": {"chain": chain(hook.url)},
    }
    response = await api.post(RESOLVE, json=body, headers=keys.header("viewer"))
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert (resolved["agent_id"], resolved["strategy"], resolved["variables"]) == (
        "sales-agent-v1",
        "webhook",
        {"plan": "gold"},
    )
    assert resolved["trail"][0]["reason"] == "the hook picked sales-agent-v1 with 1 variable(s)"
    assert hook.requests[0].body["purpose"] == "support"


async def test_minting_a_token_never_calls_the_hook_the_worker_asks_it_once_per_room(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    """The mint only predicts the pool; calling the hook here too would ask the operator's
    service twice per room and hold the token for up to its timeout."""
    saved = await api.put(
        RULES, json={"chain": chain(hook.url)}, headers=keys.header("admin") | {"If-Match": '"0"'}
    )
    assert saved.status_code == 200, saved.text
    minted = await api.post(
        "/api/v1/token", json={"metadata": {"purpose": "support"}}, headers=keys.header("admin")
    )
    assert minted.status_code == 200, minted.text
    assert hook.requests == []
    events = await api.get(
        "/api/v1/events", params={"type": "token.minted"}, headers=keys.header("viewer")
    )
    details = events.json()["items"][0]
    assert (details["agent_id"], details["details"]["routed_by"]) == ("support-agent-v1", "default")
