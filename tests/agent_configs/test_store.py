"""ConfigStore against the real MongoDB-wire database (FerretDB, or MongoDB via MONGO_URI)."""

import asyncio
import time

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.database import open_client
from agent_configs.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    DatabaseUnavailable,
    VersionConflict,
)
from agent_configs.models import AgentStatus
from agent_configs.store import ConfigStore
from devstack.services import reserve_port
from tests.factories import support_config


async def test_round_trip_keeps_every_field(store: ConfigStore) -> None:
    created = await store.create(support_config())
    assert created.version == 1
    assert created.created_at is not None and created.created_at == created.updated_at
    fetched = await store.get("support-agent-v1")
    assert fetched == created
    assert fetched.turn_schema.field_names == created.turn_schema.field_names


async def test_agent_id_is_unique(store: ConfigStore, database: AsyncDatabase) -> None:
    await store.create(support_config())
    with pytest.raises(AgentAlreadyExists, match="support-agent-v1"):
        await store.create(support_config(name="Another support agent"))
    assert await database["agent_configs"].count_documents({}) == 1
    indexes = await database["agent_configs"].index_information()
    assert any(ix.get("unique") and ix["key"] == [("agent_id", 1)] for ix in indexes.values())


async def test_stale_write_is_a_conflict_and_changes_nothing(store: ConfigStore) -> None:
    await store.create(support_config())
    first = await store.update(support_config(greeting="Hello from v2."), expected_version=1)
    assert first.version == 2

    with pytest.raises(VersionConflict) as caught:
        await store.update(support_config(greeting="Lost update."), expected_version=1)
    assert (caught.value.expected, caught.value.current) == (1, 2)
    assert "version 2, not 1" in str(caught.value)
    assert (await store.get("support-agent-v1")).greeting == "Hello from v2."


async def test_concurrent_writers_from_one_version_one_wins(store: ConfigStore) -> None:
    await store.create(support_config())
    results = await asyncio.gather(
        *(
            store.update(support_config(greeting=f"Writer {n}."), expected_version=1)
            for n in range(5)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    conflicts = [r for r in results if isinstance(r, VersionConflict)]
    assert len(winners) == 1 and len(conflicts) == 4
    current = await store.get("support-agent-v1")
    assert current.version == 2 and current.greeting == winners[0].greeting


async def test_every_saved_version_is_kept(store: ConfigStore) -> None:
    await store.create(support_config(greeting="One."))
    await store.update(support_config(greeting="Two."), expected_version=1)
    await store.archive("support-agent-v1")

    history = await store.versions("support-agent-v1")
    assert [(v.version, v.status) for v in history] == [
        (3, AgentStatus.ARCHIVED),
        (2, AgentStatus.ACTIVE),
        (1, AgentStatus.ACTIVE),
    ]
    assert (await store.get_version("support-agent-v1", 1)).greeting == "One."
    assert (await store.get_version("support-agent-v1", 2)).greeting == "Two."
    with pytest.raises(AgentNotFound, match="version 9"):
        await store.get_version("support-agent-v1", 9)


async def test_a_version_filed_by_a_writer_that_died_is_rolled_forward(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    """A crash after version 2 was committed to the history but before `current` was updated."""
    await store.create(support_config())
    committed = await store.update(support_config(greeting="Two."), expected_version=1)
    await store.update(support_config(greeting="Three."), expected_version=2)
    # Rewind the current document to version 2 and drop nothing from history: the state a
    # writer of version 3 leaves when it dies between its two steps.
    await database["agent_configs"].replace_one(
        {"agent_id": "support-agent-v1"}, committed.model_dump(mode="python")
    )

    with pytest.raises(VersionConflict) as caught:
        await store.update(support_config(greeting="Based on two."), expected_version=2)
    assert caught.value.current == 3
    current = await store.get("support-agent-v1")
    assert (current.version, current.greeting) == (3, "Three.")
    assert [v.version for v in await store.versions("support-agent-v1")] == [3, 2, 1]


async def test_pause_and_resume_are_versions_too(store: ConfigStore) -> None:
    await store.create(support_config())
    paused = await store.set_status("support-agent-v1", AgentStatus.PAUSED, expected_version=1)
    assert (paused.status, paused.version) == (AgentStatus.PAUSED, 2)
    with pytest.raises(VersionConflict):
        await store.set_status("support-agent-v1", AgentStatus.ACTIVE, expected_version=1)
    resumed = await store.set_status("support-agent-v1", AgentStatus.ACTIVE)
    assert (resumed.status, resumed.version) == (AgentStatus.ACTIVE, 3)


async def test_list_filters_and_pages(store: ConfigStore) -> None:
    for n in range(5):
        await store.create(
            support_config(
                agent_id=f"agent-{n}",
                purposes=["support"] if n % 2 == 0 else ["sales"],
                tags=["beta"] if n < 2 else [],
            )
        )
    await store.archive("agent-4")

    first = await store.list_agents(limit=2)
    second = await store.list_agents(limit=2, after=first.next_cursor)
    third = await store.list_agents(limit=2, after=second.next_cursor)
    pages = [first, second, third]
    assert [[c.agent_id for c in p.items] for p in pages] == [
        ["agent-0", "agent-1"],
        ["agent-2", "agent-3"],
        ["agent-4"],
    ]
    assert third.next_cursor is None

    active_support = await store.list_agents(status="active", purpose="support")
    assert [c.agent_id for c in active_support.items] == ["agent-0", "agent-2"]
    assert [c.agent_id for c in (await store.list_agents(tag="beta")).items] == [
        "agent-0",
        "agent-1",
    ]


async def test_missing_agent_is_not_found(store: ConfigStore) -> None:
    with pytest.raises(AgentNotFound, match="'nobody' does not exist"):
        await store.get("nobody")
    with pytest.raises(AgentNotFound):
        await store.update(support_config(agent_id="nobody"), expected_version=1)


async def test_unreachable_database_fails_fast_with_a_clear_error() -> None:
    closed_port = reserve_port(0, "test", "UNUSED")
    client = open_client(f"mongodb://127.0.0.1:{closed_port}/", timeout_ms=500)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable, match="database unreachable"):
            await ConfigStore(client["switchboard"]).get("support-agent-v1")
    finally:
        await client.close()
    assert time.monotonic() - started < 5
