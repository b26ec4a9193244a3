"""Who may call what: 401 without a valid key, 403 for the wrong role, on every route.

Also: keys are stored hashed, revocation applies, the bootstrap key, and the keys CLI.
"""

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.auth import API_KEYS, KeyRing, Role, Scope, digest_of
from devstack import REPO_ROOT, Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app
from tests.factories import support_definition

READ, WRITE, MINT = {"admin", "viewer"}, {"admin"}, {"admin", "token"}
ANY = READ | WRITE | MINT
SUPPORT = "/api/v1/agents/support-agent-v1"
HOOK_ID = "sub_" + "0" * 24
HOOK = f"/api/v1/webhooks/{HOOK_ID}"
CHANNEL = "/api/v1/channels/auth-http"
CHANNEL_BODY = {
    "binding_id": "auth-http",
    "kind": "http",
    "agent_id": "support-agent-v1",
    "http": {"keys": ["backend"]},
}
SUITE = {
    "agent_id": "support-agent-v1",
    "scenarios": [{"name": "hello", "turns": [{"user": "Hello"}]}],
}

# (method, route template, concrete path, json body, roles allowed)
MATRIX: list[tuple[str, str, str, Any, set[str]]] = [
    ("GET", "/api/v1/agents", "/api/v1/agents", None, READ),
    ("GET", "/api/v1/agents/list", "/api/v1/agents/list", None, READ),
    ("POST", "/api/v1/agents", "/api/v1/agents", support_definition(agent_id="new-agent"), WRITE),
    ("POST", "/api/v1/agents/validate", "/api/v1/agents/validate", support_definition(), READ),
    ("GET", "/api/v1/agents/{agent_id}", SUPPORT, None, READ),
    ("PUT", "/api/v1/agents/{agent_id}", SUPPORT, support_definition(), WRITE),
    ("PATCH", "/api/v1/agents/{agent_id}", SUPPORT, {"description": "patched"}, WRITE),
    ("GET", "/api/v1/agents/{agent_id}/versions", f"{SUPPORT}/versions", None, READ),
    ("GET", "/api/v1/agents/{agent_id}/versions/{version}", f"{SUPPORT}/versions/1", None, READ),
    ("POST", "/api/v1/agents/{agent_id}/rollback", f"{SUPPORT}/rollback", {"version": 1}, WRITE),
    (
        "POST",
        "/api/v1/agents/{agent_id}/versions/{version}/activate",
        f"{SUPPORT}/versions/1/activate",
        None,
        WRITE,
    ),
    ("POST", "/api/v1/agents/{agent_id}/pause", f"{SUPPORT}/pause", None, WRITE),
    ("POST", "/api/v1/agents/{agent_id}/resume", f"{SUPPORT}/resume", None, WRITE),
    ("GET", "/api/v1/agents/{agent_id}/stats", f"{SUPPORT}/stats", None, READ),
    ("DELETE", "/api/v1/agents/{agent_id}", SUPPORT, None, WRITE),
    ("GET", "/api/v1/agents/{agent_id}/suite", f"{SUPPORT}/suite", None, READ),
    ("PUT", "/api/v1/agents/{agent_id}/suite", f"{SUPPORT}/suite", SUITE, WRITE),
    ("GET", "/api/v1/agents/{agent_id}/eval-runs", f"{SUPPORT}/eval-runs", None, READ),
    ("POST", "/api/v1/agents/{agent_id}/eval-runs", f"{SUPPORT}/eval-runs", {}, WRITE),
    ("GET", "/api/v1/eval-runs/{run_id}", "/api/v1/eval-runs/evr_none", None, READ),
    ("GET", "/api/v1/sessions", "/api/v1/sessions", None, READ),
    ("GET", "/api/v1/sessions/{session_id}", "/api/v1/sessions/sess_none", None, READ),
    ("GET", "/api/v1/sessions/{session_id}/trace", "/api/v1/sessions/sess_none/trace", None, READ),
    (
        "GET",
        "/api/v1/analytics/compare",
        "/api/v1/analytics/compare?a=support-agent-v1&b=sales-agent-v1@1",
        None,
        READ,
    ),
    ("GET", "/api/v1/routing", "/api/v1/routing", None, READ),
    ("PUT", "/api/v1/routing", "/api/v1/routing", {"chain": [{"strategy": "explicit"}]}, WRITE),
    (
        "POST",
        "/api/v1/routing/resolve",
        "/api/v1/routing/resolve",
        {"metadata": {"purpose": "sales"}},
        READ,
    ),
    ("POST", "/api/v1/token", "/api/v1/token", {"metadata": {"purpose": "sales"}}, MINT),
    ("GET", "/api/v1/events", "/api/v1/events", None, READ),
    ("GET", "/api/v1/dead-letters", "/api/v1/dead-letters", None, READ),
    ("GET", "/api/v1/me", "/api/v1/me", None, ANY),
    ("GET", "/api/v1/models/local", "/api/v1/models/local", None, READ),
    ("GET", "/api/v1/webhooks", "/api/v1/webhooks", None, READ),
    ("POST", "/api/v1/webhooks", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hooks"}, WRITE),
    ("GET", "/api/v1/webhooks/{subscription_id}", HOOK, None, READ),
    ("PATCH", "/api/v1/webhooks/{subscription_id}", HOOK, {"status": "paused"}, WRITE),
    ("DELETE", "/api/v1/webhooks/{subscription_id}", HOOK, None, WRITE),
    (
        "POST",
        "/api/v1/webhooks/{subscription_id}/rotate-secret",
        f"{HOOK}/rotate-secret",
        {},
        WRITE,
    ),
    ("POST", "/api/v1/webhooks/{subscription_id}/test", f"{HOOK}/test", None, WRITE),
    ("GET", "/api/v1/webhooks/{subscription_id}/deliveries", f"{HOOK}/deliveries", None, READ),
    (
        "POST",
        "/api/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver",
        f"{HOOK}/deliveries/evt_0|{HOOK_ID}/redeliver",
        None,
        WRITE,
    ),
    (
        "POST",
        "/api/v1/webhooks/{subscription_id}/redeliver-failed",
        f"{HOOK}/redeliver-failed",
        None,
        WRITE,
    ),
    ("GET", "/api/v1/channels", "/api/v1/channels", None, READ),
    ("POST", "/api/v1/channels", "/api/v1/channels", CHANNEL_BODY, WRITE),
    ("GET", "/api/v1/channels/{binding_id}", CHANNEL, None, READ),
    ("PUT", "/api/v1/channels/{binding_id}", CHANNEL, CHANNEL_BODY, WRITE),
    ("DELETE", "/api/v1/channels/{binding_id}", CHANNEL, None, WRITE),
    ("GET", "/api/v1/channels/{binding_id}/traffic", f"{CHANNEL}/traffic", None, READ),
]
OPEN_ROUTES = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
PUBLISHABLE_KEY_ROUTES = {("POST", "/api/v1/widget/token")}
"""Authenticated by a widget binding's publishable key, not an API key (test_widget_token.py)."""


def headers_for(keys: Keys, who: str) -> dict[str, str]:
    if who == "nobody":
        return {}
    if who == "unknown":
        return {"Authorization": "Bearer sbk_not-a-key-anyone-has"}
    if who == "malformed":
        return {"Authorization": "Basic dXNlcjpwYXNz"}
    return keys.header(who) | {"If-Match": '"1"'}


def test_the_matrix_covers_every_route(app_and_api: tuple[FastAPI, httpx.AsyncClient]) -> None:
    paths = app_and_api[0].openapi()["paths"]
    served = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert served == {(m, t) for m, t, *_ in MATRIX} | OPEN_ROUTES | PUBLISHABLE_KEY_ROUTES


@pytest.mark.parametrize("who", ["nobody", "unknown", "malformed"])
async def test_without_a_valid_key_every_route_is_401(
    api: httpx.AsyncClient, keys: Keys, seeded: None, who: str
) -> None:
    for method, _, path, body, _ in MATRIX:
        response = await api.request(method, path, json=body, headers=headers_for(keys, who))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("who", ["viewer", "token", "admin"])
async def test_each_role_reaches_exactly_its_routes(
    api: httpx.AsyncClient, keys: Keys, seeded: None, who: str
) -> None:
    for method, _, path, body, allowed in MATRIX:
        response = await api.request(method, path, json=body, headers=headers_for(keys, who))
        if who in allowed:
            assert response.status_code not in (401, 403), (method, path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["type"] == "urn:switchboard:problem:forbidden"


@pytest.mark.parametrize(
    ("who", "can"),
    [
        ("admin", {"read": True, "write": True, "mint_tokens": True}),
        ("viewer", {"read": True, "write": False, "mint_tokens": False}),
        ("token", {"read": False, "write": False, "mint_tokens": True}),
    ],
)
async def test_me_names_the_key_and_what_its_role_may_do(
    api: httpx.AsyncClient, keys: Keys, who: str, can: dict[str, bool]
) -> None:
    answered = await api.get("/api/v1/me", headers=keys.header(who))
    assert answered.status_code == 200
    assert answered.json() == {"name": f"test-{who}", "role": who, "scopes": [], "can": can}


async def test_me_lists_a_token_keys_scopes_and_never_its_secret(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    answered = await api.get("/api/v1/me", headers=keys.header("token_scoped"))
    assert answered.json()["scopes"] == sorted(str(scope) for scope in Scope)
    assert keys.token_scoped not in answered.text


async def test_health_and_metrics_need_no_key(api: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await api.get(path)).status_code == 200, path


async def test_keys_are_stored_hashed(database: AsyncDatabase, keys: Keys) -> None:
    documents = await database[API_KEYS].find().to_list(None)
    stored = repr(documents)
    assert len(documents) == 4
    for token in (keys.admin, keys.viewer, keys.token, keys.token_scoped):
        assert token not in stored
        assert any(d["digest"] == digest_of(token) for d in documents)


async def test_a_revoked_key_is_refused_and_its_name_can_be_reused(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    assert (await api.get("/api/v1/agents", headers=keys.header("viewer"))).status_code == 200
    keyring = KeyRing(database)
    await keyring.revoke("test-viewer")
    assert (await api.get("/api/v1/agents", headers=keys.header("viewer"))).status_code == 401
    _, fresh = await keyring.create("test-viewer", Role.VIEWER)
    assert (
        await api.get("/api/v1/agents", headers={"Authorization": f"Bearer {fresh}"})
    ).status_code == 200
    names = [(k.name, k.active) for k in await keyring.list_keys()]
    assert names.count(("test-viewer", True)) == 1 and ("test-viewer", False) in names


async def test_bootstrap_key_only_when_no_key_exists(
    endpoints: Endpoints, database_name: str, database: AsyncDatabase
) -> None:
    settings = admin_settings(
        endpoints, database_name, admin_api_bootstrap_key="dev-bootstrap-key-0123"
    )
    async with running_app(settings) as (_, api):
        bootstrap = {"Authorization": "Bearer dev-bootstrap-key-0123"}
        assert (await api.get("/api/v1/agents", headers=bootstrap)).status_code == 200
    await KeyRing(database).revoke("bootstrap")
    async with running_app(settings) as (_, api):  # a key exists (revoked): no new bootstrap
        assert (await api.get("/api/v1/agents", headers=bootstrap)).status_code == 401
    assert [k.name for k in await KeyRing(database).list_keys()] == ["bootstrap"]


def run_cli(
    endpoints: Endpoints, database_name: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "MONGO_URI": endpoints.mongo_uri,
        "MONGO_DB": database_name,
        "MONGO_TIMEOUT_MS": "1000",
    }
    return subprocess.run(
        [sys.executable, "-m", "admin_api.keys", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_keys_cli_creates_lists_and_revokes(
    endpoints: Endpoints, database_name: str, api: httpx.AsyncClient
) -> None:
    created = run_cli(endpoints, database_name, "create", "--name", "frontend", "--role", "token")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("sbk_") and "\n" not in token
    minted = await api.post("/api/v1/token", json={}, headers={"Authorization": f"Bearer {token}"})
    assert minted.status_code == 200

    taken = run_cli(endpoints, database_name, "create", "--name", "frontend", "--role", "admin")
    assert taken.returncode == 1 and "already exists" in taken.stderr
    listed = run_cli(endpoints, database_name, "list")
    assert listed.returncode == 0 and "frontend" in listed.stdout and token not in listed.stdout

    assert run_cli(endpoints, database_name, "revoke", "--name", "frontend").returncode == 0
    refused = await api.post("/api/v1/token", json={}, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert run_cli(endpoints, database_name, "revoke", "--name", "frontend").returncode == 1
    bad_role = run_cli(endpoints, database_name, "create", "--name", "x", "--role", "root")
    assert bad_role.returncode == 2


async def test_keys_cli_grants_scopes_to_token_keys_only(
    endpoints: Endpoints, database_name: str, api: httpx.AsyncClient
) -> None:
    created = run_cli(
        endpoints,
        database_name,
        "create",
        "--name",
        "backend",
        "--role",
        "token",
        "--scope",
        "token:room",
    )
    assert created.returncode == 0, created.stderr
    header = {"Authorization": f"Bearer {created.stdout.strip()}"}
    named = await api.post("/api/v1/token", json={"room": "desk-1"}, headers=header)
    assert named.status_code == 200 and named.json()["room"] == "desk-1"
    refused = await api.post("/api/v1/token", json={"identity": "bob"}, headers=header)
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "identity"

    listed = run_cli(endpoints, database_name, "list")
    assert listed.returncode == 0 and "token:room" in listed.stdout
    viewer = run_cli(
        endpoints,
        database_name,
        "create",
        "--name",
        "v",
        "--role",
        "viewer",
        "--scope",
        "token:room",
    )
    assert viewer.returncode == 1 and "scopes are for token keys only" in viewer.stderr
    unknown = run_cli(
        endpoints, database_name, "create", "--name", "u", "--role", "token", "--scope", "root"
    )
    assert unknown.returncode == 2


def test_keys_cli_exits_2_when_the_database_is_down(database_name: str) -> None:
    down = Endpoints("mongodb://127.0.0.1:9/", "ws://127.0.0.1:9", "k", "s")
    result = run_cli(down, database_name, "list")
    assert result.returncode == 2 and "cannot reach MongoDB" in result.stderr
