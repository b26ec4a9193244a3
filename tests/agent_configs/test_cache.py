"""ConfigCache with the change stamp, against the real MongoDB-wire database.

What a user notices: an edit through the store reaches the next room at once, a warm room
costs the database one small query whatever the chain looked at, and an edit that bypasses
the stores is still picked up after `max_age_s`.
"""

from collections import Counter

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cache import ConfigCache
from agent_configs.changes import ChangeStamp
from agent_configs.errors import AgentNotFound
from agent_configs.models import AgentStatus
from agent_configs.routing.rules import DEFAULT_RULES, RulesStore
from agent_configs.store import ConfigStore
from devstack import Endpoints
from tests.factories import support_config


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("hello", "isMaster", "ismaster", "endSessions"):
            self.seen[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_edit_through_the_store_reaches_the_next_refresh(store: ConfigStore, database: AsyncDatabase) -> None:
    created = await store.create(support_config())
    cache = ConfigCache(ConfigStore(database), ChangeStamp(database))
    await cache.refresh()
    assert (await cache.get("support-agent-v1")).greeting == created.greeting

    await store.update(created.model_copy(update={"greeting": "Hello from v2"}), expected_version=1)
    assert await cache.refresh() is True
    assert (await cache.get("support-agent-v1")).greeting == "Hello from v2"

    await store.set_status("support-agent-v1", AgentStatus.PAUSED)
    await cache.refresh()
    assert (await cache.get("support-agent-v1")).status == AgentStatus.PAUSED


async def test_rules_save_and_new_agents_move_the_stamp(store: ConfigStore, database: AsyncDatabase) -> None:
    cache = ConfigCache(ConfigStore(database), ChangeStamp(database))
    await cache.refresh()
    with pytest.raises(AgentNotFound):
        await cache.get("support-agent-v1")

    await store.create(support_config())
    assert await cache.refresh() is True
    assert (await cache.get("support-agent-v1")).version == 1

    assert await cache.refresh() is False
    await RulesStore(database).save(DEFAULT_RULES.definition(), expected_version=0)
    assert await cache.refresh() is True


async def test_warm_room_is_one_small_query(endpoints: Endpoints, database_name: str) -> None:
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(endpoints.mongo_uri, tz_aware=True, event_listeners=[commands])
    try:
        database = client[database_name]
        store = ConfigStore(database)
        await store.create(support_config())
        cache = ConfigCache(store, ChangeStamp(database))
        await cache.refresh()
        await cache.get("support-agent-v1")
        with pytest.raises(AgentNotFound):
            await cache.get("no-such-agent")

        commands.seen.clear()
        for _ in range(5):  # five warm rooms, each looking at two configs
            await cache.refresh()
            await cache.get("support-agent-v1")
            with pytest.raises(AgentNotFound):
                await cache.get("no-such-agent")
        assert commands.seen == Counter({"find": 5})
    finally:
        await client.drop_database(database_name)
        await client.close()


async def test_edit_that_bypasses_the_store_is_seen_after_max_age(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    await store.create(support_config())
    clock = FakeClock()
    cache = ConfigCache(ConfigStore(database), ChangeStamp(database), max_age_s=30.0, clock=clock)
    await cache.refresh()
    await cache.get("support-agent-v1")

    await database["agent_configs"].update_one(
        {"agent_id": "support-agent-v1"}, {"$set": {"greeting": "Edited by hand", "version": 7}}
    )
    clock.now = 29.0
    await cache.refresh()
    assert (await cache.get("support-agent-v1")).greeting != "Edited by hand"
    clock.now = 30.0
    await cache.refresh()
    assert (await cache.get("support-agent-v1")).greeting == "Edited by hand"


async def test_unknown_agent_ids_are_remembered_only_up_to_max_unknown(
    endpoints: Endpoints, database_name: str
) -> None:
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(endpoints.mongo_uri, tz_aware=True, event_listeners=[commands])
    try:
        database = client[database_name]
        store = ConfigStore(database)
        await store.create(support_config())
        cache = ConfigCache(store, ChangeStamp(database), max_unknown=8)
        await cache.refresh()
        await cache.get("support-agent-v1")
        for n in range(200):  # ids from room metadata: anyone who starts a room picks them
            with pytest.raises(AgentNotFound):
                await cache.get(f"unknown-{n}")
        assert cache.held == 1 + 8

        # The most recent misses are still answered from memory; the oldest ones were dropped.
        commands.seen.clear()
        with pytest.raises(AgentNotFound):
            await cache.get("unknown-199")
        assert (await cache.get("support-agent-v1")).agent_id == "support-agent-v1"
        assert commands.seen == Counter()
        with pytest.raises(AgentNotFound):
            await cache.get("unknown-0")
        assert commands.seen == Counter({"find": 1})
    finally:
        await client.drop_database(database_name)
        await client.close()


async def test_without_a_change_stamp_unknown_agent_ids_are_not_kept(store: ConfigStore) -> None:
    await store.create(support_config())
    cache = ConfigCache(store)
    await cache.get("support-agent-v1")
    for n in range(50):
        with pytest.raises(AgentNotFound):
            await cache.get(f"unknown-{n}")
    assert cache.held == 1
