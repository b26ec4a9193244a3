"""The admin API's outbox events: one CloudEvent per committed lifecycle or routing write, in the
documented shape, with nothing secret in it; queued events survive a MongoDB outage (spooled at
shutdown, written at the next start)."""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.metrics import ApiMetrics
from admin_api.outbox import AdminOutbox
from admin_api.settings import AdminSettings
from agent_configs.cloudevents import ADMIN_SOURCE, OUTBOX, EventType, cloudevent
from agent_configs.database import open_client
from agent_configs.models import AgentConfig
from devstack import REPO_ROOT, Endpoints
from devstack.services import reserve_port
from tests.admin_api.conftest import Keys, admin_settings
from tests.cloudevents import CLOUDEVENT_KEYS
from tests.factories import support_definition
from tests.worker.test_database_down import OwnFerretDB, in_thread

AGENTS = "/api/v1/agents"
RULES = "/api/v1/routing"
SECRET_WORDS = ("secret", "password", "token", "api_key", "apikey", "authorization")


@pytest.fixture
def settings(endpoints: Endpoints, database_name: str, tmp_path: Path) -> AdminSettings:
    return admin_settings(endpoints, database_name, admin_api_spool_dir=tmp_path / "spool")


async def outbox_events(
    database: AsyncDatabase, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The outbox once it holds `count` events (written by the API's writer, off the request)."""
    deadline = time.monotonic() + timeout
    while True:
        documents = await database[OUTBOX].find().sort("created_at", 1).to_list(None)
        if len(documents) >= count or time.monotonic() > deadline:
            assert len(documents) == count, [d["type"] for d in documents]
            return documents
        await asyncio.sleep(0.05)


def secret_looking_keys(value: Any, path: str = "data") -> list[str]:
    if isinstance(value, dict):
        found = [f"{path}.{k}" for k in value if any(word in k.lower() for word in SECRET_WORDS)]
        return found + [p for k, v in value.items() for p in secret_looking_keys(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secret_looking_keys(v, f"{path}.{i}")]
    return []


def if_match(keys: Keys, version: int) -> dict[str, str]:
    return keys.header("admin") | {"If-Match": f'"{version}"'}


async def test_each_lifecycle_and_routing_write_puts_one_documented_cloudevent_in_the_outbox(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    definition = support_definition(agent_id="billing-agent", name="Billing", purposes=["billing"])
    path = f"{AGENTS}/billing-agent"
    admin = keys.header("admin")
    assert (await api.post(AGENTS, json=definition, headers=admin)).status_code == 201
    patched = await api.patch(
        path, json={"greeting": "Hello from billing"}, headers=if_match(keys, 1)
    )
    assert patched.status_code == 200, patched.text
    assert (await api.post(f"{path}/pause", headers=admin)).status_code == 200
    assert (
        await api.post(f"{path}/pause", headers=admin)
    ).status_code == 200  # no change: no event
    assert (await api.post(f"{path}/resume", headers=admin)).status_code == 200
    rolled = await api.post(f"{path}/rollback", json={"version": 1}, headers=admin)
    assert rolled.status_code == 200, rolled.text
    assert (await api.delete(path, headers=admin)).status_code == 200
    chain = [
        {"strategy": "explicit"},
        {"strategy": "default", "params": {"agent_id": "billing-agent"}, "enabled": True},
    ]
    saved = await api.put(RULES, json={"chain": chain}, headers=if_match(keys, 0))
    assert saved.status_code == 200, saved.text

    documents = await outbox_events(database, 7)
    assert [d["type"] for d in documents] == [
        "agent.created",
        "agent.updated",
        "agent.paused",
        "agent.resumed",
        "agent.rolled_back",
        "agent.archived",
        "routing.updated",
    ]
    for document in documents:
        event = cloudevent(document)
        assert set(event) == CLOUDEVENT_KEYS
        assert event["specversion"] == "1.0" and event["source"] == ADMIN_SOURCE
        assert event["id"].startswith("evt_") and len(event["id"]) == 36
        assert event["time"].endswith("Z") and event["datacontenttype"] == "application/json"
        assert document["fanned_out"] is False and isinstance(document["seq"], int)
        assert json.loads(json.dumps(event)) == event, "the event is plain JSON"

    agent_events = documents[:6]
    assert {d["subject"] for d in agent_events} == {"billing-agent"}
    assert {d["ordering_key"] for d in agent_events} == {"agent:billing-agent"}
    assert [d["seq"] for d in agent_events] == sorted(d["seq"] for d in agent_events)
    assert [(d["data"]["version"], d["data"]["status"]) for d in agent_events] == [
        (1, "active"),
        (2, "active"),
        (3, "paused"),
        (4, "active"),
        (5, "active"),
        (6, "archived"),
    ]
    assert agent_events[0]["data"] == {
        "agent_id": "billing-agent",
        "name": "Billing",
        "version": 1,
        "status": "active",
        "actor": "test-admin",
    }
    assert agent_events[4]["data"]["restored_version"] == 1
    routing = documents[6]
    assert (
        routing["subject"] == "routing"
        and routing["ordering_key"] == "routing"
        and routing["agent_id"] is None
    )
    assert routing["data"] == {
        "rules_version": 1,
        "strategies": ["explicit", "default"],
        "actor": "test-admin",
    }


async def test_no_event_carries_a_key_or_a_secret(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    definition = support_definition(agent_id="keyed-agent", name="Keyed", purposes=["keyed"])
    admin = keys.header("admin")
    assert (await api.post(AGENTS, json=definition, headers=admin)).status_code == 201
    assert (await api.post(f"{AGENTS}/keyed-agent/pause", headers=admin)).status_code == 200

    documents = await outbox_events(database, 2)
    text = json.dumps([cloudevent(d) for d in documents])
    for key in (keys.admin, keys.viewer, keys.token, keys.token_scoped):
        assert key not in text
    assert [p for d in documents for p in secret_looking_keys(d["data"])] == []


async def test_events_queued_while_mongodb_is_down_are_counted_spooled_at_shutdown_and_written_at_the_next_start(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    del endpoints  # the devstack builds the FerretDB binary first
    ferretdb = OwnFerretDB(tmp_path_factory.mktemp("outbox-ferretdb") / "data")
    await in_thread(ferretdb.start)
    client = open_client(ferretdb.uri, 1000)
    database = client["admin_outbox"]
    config = AgentConfig.model_validate(
        support_definition(agent_id="spooled-agent", name="Spooled")
    )
    try:
        await in_thread(ferretdb.stop)
        metrics = ApiMetrics()
        outbox = AdminOutbox(database, tmp_path / "spool", metrics.outbox)
        outbox.agent_changed(EventType.AGENT_PAUSED, config, "ops")
        deadline = time.monotonic() + 10
        while not metrics.registry.get_sample_value("switchboard_admin_outbox_write_retries_total"):
            assert time.monotonic() < deadline, (
                "the writer never retried against the stopped database"
            )
            await asyncio.sleep(0.05)
        assert (
            metrics.registry.get_sample_value("switchboard_admin_outbox_backlog") == 1
        )  # an operator sees it wait
        await outbox.close()  # the database is away: the event goes to the spool
        assert list((tmp_path / "spool").rglob("records-*.jsonl"))  # in this process's directory
        assert metrics.registry.get_sample_value("switchboard_admin_outbox_spooled_total") == 1
        assert metrics.registry.get_sample_value("switchboard_admin_outbox_backlog") == 0

        await in_thread(ferretdb.start)
        restarted = AdminOutbox(database, tmp_path / "spool")
        await restarted.prepare()
        documents = await database[OUTBOX].find().to_list(None)
        assert [(d["type"], d["subject"], d["data"]["actor"]) for d in documents] == [
            ("agent.paused", "spooled-agent", "ops")
        ]
        assert not list((tmp_path / "spool").rglob("records-*"))
        await restarted.close()
    finally:
        await client.close()
        await in_thread(ferretdb.stop)


async def test_events_an_api_process_spooled_before_it_was_killed_are_written_by_a_running_one(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A rollout or scale-down during an outage: the old pod's outbox spool (on the volume the
    replicas share) is adopted by a replica that keeps running, without a restart of its own."""
    del endpoints  # the devstack builds the FerretDB binary first
    ferretdb = OwnFerretDB(tmp_path_factory.mktemp("adopt-ferretdb") / "data")
    await in_thread(ferretdb.start)
    client = open_client(ferretdb.uri, 1000)
    database = client["spool_adoption"]  # tests/worker/spool_process.py writes there
    running = AdminOutbox(database, tmp_path / "spool")
    adopting = asyncio.create_task(running.adopt_forever(every_s=0.1))
    gone = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.worker.spool_process",
        "spool",
        f"mongodb://127.0.0.1:{reserve_port(0, 'nothing', 'UNUSED')}/",  # away: it spools
        str(tmp_path / "spool"),
        OUTBOX,
        "evt",
        "5",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(gone.stdout.readline(), 60)
        assert line.startswith(b"spooled "), line
        gone.kill()  # SIGKILL: it never replays its own spool
        await gone.wait()

        deadline = time.monotonic() + 30
        while await database[OUTBOX].count_documents({}) < 5:
            assert time.monotonic() < deadline, "the running API never adopted the spool"
            await asyncio.sleep(0.05)
        assert sorted(d["_id"] for d in await database[OUTBOX].find().to_list(None)) == [
            f"evt:{index}" for index in range(5)
        ]
        assert not list((tmp_path / "spool").rglob("records-*"))
    finally:
        if gone.returncode is None:
            gone.kill()
            await gone.wait()
        adopting.cancel()
        await asyncio.gather(adopting, return_exceptions=True)
        await running.close()
        await client.close()
        await in_thread(ferretdb.stop)
