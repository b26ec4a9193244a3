"""Agent types over HTTP: CRUD, ETag / If-Match, history, rollback, lifecycle, validation."""

import asyncio
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.store import ConfigStore
from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app
from tests.factories import support_definition

AGENTS = "/api/v1/agents"
PROBLEM = "application/problem+json"


def new_agent(agent_id: str = "billing-agent", **changes: Any) -> dict[str, Any]:
    return support_definition(
        **({"agent_id": agent_id, "name": "Billing", "purposes": ["billing"]} | changes)
    )


async def create(api: httpx.AsyncClient, keys: Keys, definition: dict[str, Any]) -> httpx.Response:
    response = await api.post(AGENTS, json=definition, headers=keys.header("admin"))
    assert response.status_code == 201, response.text
    return response


def if_match(keys: Keys, version: int | str, role: str = "admin") -> dict[str, str]:
    return keys.header(role) | {"If-Match": f'"{version}"'}


async def test_create_read_and_list(api: httpx.AsyncClient, keys: Keys) -> None:
    created = await create(api, keys, new_agent())
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"].endswith(f"{AGENTS}/billing-agent")
    body = created.json()
    assert body["version"] == 1 and body["status"] == "active" and body["created_at"]

    read = await api.get(f"{AGENTS}/billing-agent", headers=keys.header("viewer"))
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    assert read.json() == body

    listed = await api.get(AGENTS, headers=keys.header("viewer"))
    assert [a["agent_id"] for a in listed.json()["items"]] == ["billing-agent"]


async def test_create_twice_is_409(api: httpx.AsyncClient, keys: Keys) -> None:
    await create(api, keys, new_agent())
    again = await api.post(AGENTS, json=new_agent(), headers=keys.header("admin"))
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["type"] == "urn:switchboard:problem:agent-exists"


async def test_invalid_config_names_each_field_and_never_echoes_the_value(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    secret = "sk-proj-" + "a1B2c3D4" * 4
    definition = new_agent(llm={"model": "gpt-4o", "provider": "openai", "temperature": 3})
    definition["greeting"] = f"Hi, the key is {secret}"
    response = await api.post(AGENTS, json=definition, headers=keys.header("admin"))
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "llm.temperature" in fields and "greeting" in fields
    assert "secrets are never stored" in fields["greeting"]
    assert secret not in response.text


async def test_list_filters_paginates_and_keeps_the_list_alias(
    api: httpx.AsyncClient, keys: Keys, seeded: None
) -> None:
    viewer = keys.header("viewer")
    first = (await api.get(AGENTS, params={"limit": 3}, headers=viewer)).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = (
        await api.get(AGENTS, params={"limit": 3, "cursor": first["next_cursor"]}, headers=viewer)
    ).json()
    ids = [a["agent_id"] for a in first["items"] + rest["items"]]
    assert ids == sorted(ids) and len(ids) == 4 and rest["next_cursor"] is None

    by_purpose = (await api.get(AGENTS, params={"purpose": "sales"}, headers=viewer)).json()
    assert [a["agent_id"] for a in by_purpose["items"]] == ["sales-agent-v1"]
    by_tag = (await api.get(AGENTS, params={"tag": "support"}, headers=viewer)).json()
    assert [a["agent_id"] for a in by_tag["items"]] == ["support-agent-v1"]

    await api.post(f"{AGENTS}/sales-agent-v1/pause", headers=keys.header("admin"))
    paused = (await api.get(f"{AGENTS}/list", params={"status": "paused"}, headers=viewer)).json()
    assert [a["agent_id"] for a in paused["items"]] == ["sales-agent-v1"]
    alias = (await api.get(f"{AGENTS}/list", headers=viewer)).json()
    assert alias == (await api.get(AGENTS, headers=viewer)).json()


async def test_put_needs_if_match_and_a_stale_one_is_412_with_the_current_version(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    await create(api, keys, new_agent())
    changed = new_agent(greeting="Hello from version two.")

    missing = await api.put(f"{AGENTS}/billing-agent", json=changed, headers=keys.header("admin"))
    assert missing.status_code == 428

    saved = await api.put(f"{AGENTS}/billing-agent", json=changed, headers=if_match(keys, 1))
    assert saved.status_code == 200 and saved.headers["etag"] == '"2"'
    assert saved.json()["greeting"] == "Hello from version two."

    stale = await api.put(f"{AGENTS}/billing-agent", json=new_agent(), headers=if_match(keys, 1))
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    assert stale.json()["current_version"] == 2 and stale.headers["etag"] == '"2"'

    weak = await api.put(
        f"{AGENTS}/billing-agent",
        json=new_agent(),
        headers=keys.header("admin") | {"If-Match": 'W/"2"'},
    )
    assert weak.status_code == 200 and weak.json()["version"] == 3

    garbage = await api.put(
        f"{AGENTS}/billing-agent", json=new_agent(), headers=if_match(keys, "abc")
    )
    assert garbage.status_code == 422 and garbage.json()["errors"][0]["field"] == "If-Match"


async def test_concurrent_writers_on_one_version_exactly_one_wins(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    await create(api, keys, new_agent())
    edits = [new_agent(greeting=f"Writer {n} was here.") for n in range(5)]
    responses = await asyncio.gather(
        *(
            api.put(f"{AGENTS}/billing-agent", json=edit, headers=if_match(keys, 1))
            for edit in edits
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 412, 412, 412, 412], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()
    assert all(r.json()["current_version"] == 2 for r in responses if r.status_code == 412)
    current = (await api.get(f"{AGENTS}/billing-agent", headers=keys.header("viewer"))).json()
    assert current["greeting"] == winner["greeting"] and current["version"] == 2


async def test_put_checks_agent_id_and_keeps_the_status(api: httpx.AsyncClient, keys: Keys) -> None:
    await create(api, keys, new_agent())
    other = await api.put(
        f"{AGENTS}/billing-agent", json=new_agent("other-agent"), headers=if_match(keys, 1)
    )
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "agent_id"

    await api.post(f"{AGENTS}/billing-agent/pause", headers=keys.header("admin"))
    without_status = {k: v for k, v in new_agent().items() if k != "status"}
    kept = await api.put(f"{AGENTS}/billing-agent", json=without_status, headers=if_match(keys, 2))
    assert kept.status_code == 200 and kept.json()["status"] == "paused"
    as_read = await api.put(f"{AGENTS}/billing-agent", json=kept.json(), headers=if_match(keys, 3))
    assert as_read.status_code == 200 and as_read.json()["version"] == 4
    explicit = await api.put(
        f"{AGENTS}/billing-agent", json=new_agent(status="active"), headers=if_match(keys, 4)
    )
    assert explicit.status_code == 422 and explicit.json()["errors"][0]["field"] == "status"


async def test_patch_merges_validates_and_refuses_store_fields(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    await create(api, keys, new_agent(greeting="Hello."))
    path = f"{AGENTS}/billing-agent"
    merge = {"Content-Type": "application/merge-patch+json"}

    patched = await api.patch(
        path,
        json={"llm": {"temperature": 0.2}, "greeting": None},
        headers=if_match(keys, 1) | merge,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["llm"]["temperature"] == 0.2 and body["llm"]["model"] and body["greeting"] is None
    assert body["version"] == 2

    invalid = await api.patch(path, json={"llm": {"temperature": 9}}, headers=if_match(keys, 2))
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "llm.temperature"
    owned = await api.patch(path, json={"version": 7}, headers=if_match(keys, 2))
    assert owned.status_code == 422 and owned.json()["errors"][0]["field"] == "version"
    stale = await api.patch(path, json={"name": "X"}, headers=if_match(keys, 1))
    assert stale.status_code == 412 and stale.json()["current_version"] == 2
    assert (
        await api.patch(path, json={"name": "X"}, headers=keys.header("admin"))
    ).status_code == 428


async def test_versions_and_rollback(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    await create(api, keys, new_agent(greeting="First greeting."))
    path = f"{AGENTS}/billing-agent"
    await api.put(path, json=new_agent(greeting="Second greeting."), headers=if_match(keys, 1))
    await api.post(f"{path}/pause", headers=keys.header("admin"))

    versions = (await api.get(f"{path}/versions", headers=keys.header("viewer"))).json()
    assert [v["version"] for v in versions["items"]] == [3, 2, 1]
    assert [v["status"] for v in versions["items"]] == ["paused", "active", "active"]
    first = (await api.get(f"{path}/versions/1", headers=keys.header("viewer"))).json()
    assert first["greeting"] == "First greeting." and first["version"] == 1

    stale = await api.post(f"{path}/rollback", json={"version": 1}, headers=if_match(keys, 2))
    assert stale.status_code == 412 and stale.json()["current_version"] == 3
    rolled = await api.post(f"{path}/rollback", json={"version": 1}, headers=if_match(keys, 3))
    assert rolled.status_code == 200, rolled.text
    body = rolled.json()
    assert (
        body["version"] == 4
        and body["greeting"] == "First greeting."
        and body["status"] == "paused"
    )
    assert (await ConfigStore(database).get("billing-agent")).greeting == "First greeting."

    missing = await api.post(f"{path}/rollback", json={"version": 99}, headers=keys.header("admin"))
    assert missing.status_code == 404
    assert (await api.get(f"{path}/versions/99", headers=keys.header("viewer"))).status_code == 404


async def test_pause_resume_archive_are_idempotent_and_audited(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    await create(api, keys, new_agent())
    path = f"{AGENTS}/billing-agent"
    admin = keys.header("admin")
    assert (await api.post(f"{path}/pause", headers=admin)).json()["status"] == "paused"
    again = await api.post(f"{path}/pause", headers=admin)
    assert again.json()["version"] == 2  # nothing changed, no new version
    assert (await api.post(f"{path}/resume", headers=if_match(keys, 2))).json()[
        "status"
    ] == "active"
    stale = await api.delete(path, headers=if_match(keys, 2))
    assert stale.status_code == 412
    archived = await api.delete(path, headers=admin)
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    assert (await api.get(path, headers=admin)).json()["status"] == "archived"

    events = (
        await api.get("/api/v1/events", params={"agent_id": "billing-agent"}, headers=admin)
    ).json()
    kinds = [(e["type"], e["version"], e["actor"]) for e in events["items"]]
    assert kinds == [
        ("agent.archived", 4, "test-admin"),
        ("agent.resumed", 3, "test-admin"),
        ("agent.paused", 2, "test-admin"),
        ("agent.created", 1, "test-admin"),
    ]


async def test_unknown_agent_is_404_problem(api: httpx.AsyncClient, keys: Keys) -> None:
    for method, path in [
        ("GET", f"{AGENTS}/nobody-here"),
        ("GET", f"{AGENTS}/nobody-here/versions"),
        ("POST", f"{AGENTS}/nobody-here/pause"),
        ("DELETE", f"{AGENTS}/nobody-here"),
        ("GET", f"{AGENTS}/nobody-here/stats"),
    ]:
        response = await api.request(method, path, headers=keys.header("admin"))
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["instance"] == path


async def test_validate_reports_without_saving(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    good = await api.post(f"{AGENTS}/validate", json=new_agent(), headers=keys.header("viewer"))
    assert good.status_code == 200
    assert good.json()["valid"] is True and good.json()["config"]["agent_id"] == "billing-agent"

    bad = new_agent(name="")
    bad["llm"]["options"] = {"api_key": "x"}
    report = (await api.post(f"{AGENTS}/validate", json=bad, headers=keys.header("viewer"))).json()
    assert report["valid"] is False and report["config"] is None
    assert {e["field"] for e in report["errors"]} == {"name", "llm.options"}
    voice_without_stt = new_agent(modalities=["voice"], stt=None)
    report = (
        await api.post(f"{AGENTS}/validate", json=voice_without_stt, headers=keys.header("viewer"))
    ).json()
    assert report["valid"] is False and "needs stt" in report["errors"][0]["message"]
    assert (await ConfigStore(database).list_agents()).items == []


@pytest.mark.parametrize("body", [[1, 2], "text", 3])
async def test_validate_needs_an_object(api: httpx.AsyncClient, keys: Keys, body: object) -> None:
    response = await api.post(f"{AGENTS}/validate", json=body, headers=keys.header("viewer"))
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM


async def test_read_cache_is_refreshed_by_writes_and_dropped_on_conflict(
    endpoints: Endpoints, database_name: str, database: AsyncDatabase, keys: Keys
) -> None:
    settings = admin_settings(endpoints, database_name, admin_api_config_cache_ttl_s=600.0)
    async with running_app(settings) as (_, api):
        path = f"{AGENTS}/billing-agent"
        await create(api, keys, new_agent())
        assert (await api.get(path, headers=keys.header("viewer"))).headers["etag"] == '"1"'

        store = ConfigStore(database)  # another replica saves version 2
        await store.update(await store.get("billing-agent"), expected_version=1)
        stale = await api.get(path, headers=keys.header("viewer"))
        assert stale.headers["etag"] == '"1"'  # within the TTL: the documented staleness
        refused = await api.put(path, json=new_agent(), headers=if_match(keys, 1))
        assert refused.status_code == 412  # ... which can never overwrite the newer version
        assert (await api.get(path, headers=keys.header("viewer"))).headers["etag"] == '"2"'

        patched = await api.patch(path, json={"name": "Billing 3"}, headers=if_match(keys, 2))
        assert patched.status_code == 200
        fresh = await api.get(path, headers=keys.header("viewer"))
        assert fresh.headers["etag"] == '"3"' and fresh.json()["name"] == "Billing 3"
