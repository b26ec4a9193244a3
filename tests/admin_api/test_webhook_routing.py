"""The `webhook` routing strategy over HTTP: a refused URL is a 422 at its field and never
called; resolve explains a decision the hook made, variables included. Only an admin's action
calls a hook out: a preview of rules sent with the request never does unless an admin asks
(`call_hooks`), the stored chain's hooks are the only ones a viewer reaches, and dry runs that
call a hook are rate-limited per key. Viewers see where a hook is (scheme and host), never its
path."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app
from tests.agent_configs.routing.hook_server import HookServer

RULES = "/api/v1/routing"
RESOLVE = "/api/v1/routing/resolve"
PREVIEW_SKIP = "not called in a preview of caller-supplied rules"

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


async def save_chain(api: httpx.AsyncClient, keys: Keys, url: str) -> None:
    saved = await api.put(
        RULES, json={"chain": chain(url)}, headers=keys.header("admin") | {"If-Match": '"0"'}
    )
    assert saved.status_code == 200, saved.text


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


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{port}/route?token=s3cr3t-value-1", "a credential in a URL query"),
        ("http://crm:s3cr3t@127.0.0.1:{port}/route", "a credential in a URL"),
    ],
)
async def test_a_hook_url_carrying_a_secret_is_a_422_naming_it_and_nothing_is_saved(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer, url: str, kind: str
) -> None:
    """A URL is stored with the rules and shown to whoever reads them: a secret goes in a
    header naming an env var, as for webhook subscriptions and tools."""
    secret_url = url.format(port=hook.port)
    rules = {"chain": [chain(hook.url)[1], *chain(secret_url)]}
    refused = await api.put(RULES, json=rules, headers=keys.header("admin") | {"If-Match": '"0"'})
    assert refused.status_code == 422, refused.text
    problems = {p["field"]: p["message"] for p in refused.json()["errors"]}
    assert list(problems) == ["chain.1.params.url"]
    assert kind in problems["chain.1.params.url"]
    assert "s3cr3t" not in refused.text
    previewed = await api.post(
        RESOLVE, json={"rules": rules, "call_hooks": True}, headers=keys.header("admin")
    )
    assert previewed.status_code == 422, previewed.text
    assert [p["field"] for p in previewed.json()["errors"]] == ["chain.1.params.url"]
    assert (await api.get(RULES, headers=keys.header("viewer"))).json()["version"] == 0
    assert hook.requests == []


async def test_a_viewers_preview_of_sent_rules_never_calls_the_hook_and_says_it_was_skipped(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    body = {
        "metadata": {"purpose": "support", "user_id": "u-1"},
        "rules": {"chain": chain(hook.url)},
    }
    response = await api.post(RESOLVE, json=body, headers=keys.header("viewer"))
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert hook.requests == []
    webhook = resolved["trail"][0]
    assert (webhook["strategy"], webhook["outcome"]) == ("webhook", "no_proposal")
    assert PREVIEW_SKIP in webhook["reason"]
    assert (resolved["agent_id"], resolved["strategy"], resolved["variables"]) == (
        "support-agent-v1",
        "default",
        {},
    )


async def test_an_admin_preview_calls_the_hook_only_when_asked_and_explains_its_answer(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    body = {
        "metadata": {"purpose": "support", "user_id": "u-1"},
        "rules": {"chain": chain(hook.url)},
    }
    unasked = await api.post(RESOLVE, json=body, headers=keys.header("admin"))
    assert unasked.status_code == 200, unasked.text
    assert PREVIEW_SKIP in unasked.json()["trail"][0]["reason"]
    assert hook.requests == []

    response = await api.post(
        RESOLVE, json=body | {"call_hooks": True}, headers=keys.header("admin")
    )
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert (resolved["agent_id"], resolved["strategy"], resolved["variables"]) == (
        "sales-agent-v1",
        "webhook",
        {"plan": "gold"},
    )
    assert resolved["trail"][0]["reason"] == "the hook picked sales-agent-v1 with 1 variable(s)"
    [asked] = hook.requests
    assert asked.body["purpose"] == "support"


async def test_a_viewer_asking_to_call_hooks_is_a_403_naming_the_field(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    for body in ({"rules": {"chain": chain(hook.url)}, "call_hooks": True}, {"call_hooks": True}):
        refused = await api.post(RESOLVE, json=body, headers=keys.header("viewer"))
        assert refused.status_code == 403, refused.text
        assert [p["field"] for p in refused.json()["errors"]] == ["call_hooks"]
    assert hook.requests == []


async def test_the_stored_chains_hook_is_what_a_viewer_reaches_and_such_dry_runs_are_rate_limited_per_key(
    endpoints: Endpoints, database_name: str, keys: Keys, hook: HookServer
) -> None:
    settings = admin_settings(
        endpoints,
        database_name,
        admin_api_hook_dry_run_rate_per_min=6.0,
        admin_api_hook_dry_run_burst=2,
    )
    async with running_app(settings) as (_, api):
        await save_chain(api, keys, hook.url)
        viewer = keys.header("viewer")
        answers = [
            await api.post(RESOLVE, json={"metadata": {"purpose": "support"}}, headers=viewer)
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429], answers[-1].text
        assert answers[0].json()["strategy"] == "webhook"  # the same call a room join makes
        limited = answers[2]
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert limited.json()["type"] == "urn:switchboard:problem:rate-limited"
        assert len(hook.requests) == 2

        # A dry run that calls no hook is not counted; another key has its own bucket.
        preview = await api.post(
            RESOLVE, json={"rules": {"chain": chain(hook.url)}}, headers=viewer
        )
        assert preview.status_code == 200, preview.text
        other_key = await api.post(RESOLVE, json={}, headers=keys.header("admin"))
        assert other_key.status_code == 200, other_key.text
        assert len(hook.requests) == 3


async def test_a_viewer_reads_where_a_hook_is_but_not_its_path_an_admin_reads_it_all(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    url = f"http://127.0.0.1:{hook.port}/tenant-7f3a/route"
    await save_chain(api, keys, url)
    seen_by_viewer = (await api.get(RULES, headers=keys.header("viewer"))).json()
    assert seen_by_viewer["chain"][0]["params"]["url"] == f"http://127.0.0.1:{hook.port}"
    assert "tenant-7f3a" not in json.dumps(seen_by_viewer)
    seen_by_admin = (await api.get(RULES, headers=keys.header("admin"))).json()
    assert seen_by_admin["chain"][0]["params"]["url"] == url


async def test_minting_a_token_never_calls_the_hook_the_worker_asks_it_once_per_room(
    api: httpx.AsyncClient, keys: Keys, hook: HookServer
) -> None:
    """The mint only predicts the pool; calling the hook here too would ask the operator's
    service twice per room and hold the token for up to its timeout."""
    await save_chain(api, keys, hook.url)
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
