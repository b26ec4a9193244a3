"""The catalog (configs + routing rules keyed on the change stamp), against the real database.

What a user notices: an edit through the stores reaches the next room at once, a warm room
costs the database one small query whatever the chain looked at, an edit that bypasses the
stores is still picked up after `max_age_s`, and a room during an outage is routed from the
last-known good catalog on disk.
"""

from collections import Counter
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.catalog import Catalog
from agent_configs.changes import ChangeStamp
from agent_configs.database import open_client
from agent_configs.errors import AgentNotFound, DatabaseUnavailable
from agent_configs.models import AgentStatus
from agent_configs.routing.context import RoutingContext
from agent_configs.routing.errors import InvalidRoutingRules
from agent_configs.routing.router import Router
from agent_configs.routing.rules import DEFAULT_RULES, RulesStore
from agent_configs.snapshot import CatalogSnapshot
from agent_configs.store import ROUTING_RULES, ConfigStore
from devstack import Endpoints
from devstack.services import reserve_port
from tests.agent_configs.routing.helpers import seed_builtin_agents
from tests.factories import support_config

SALES_ROOM = RoutingContext.from_metadata({"purpose": "sales"})


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


def catalog_on(database: AsyncDatabase, **options: object) -> Catalog:
    return Catalog(ConfigStore(database), RulesStore(database), ChangeStamp(database), **options)  # type: ignore[arg-type]


# -- configs ------------------------------------------------------------------------------


async def test_edit_through_the_store_reaches_the_next_refresh(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    created = await store.create(support_config())
    catalog = catalog_on(database)
    await catalog.refresh()
    assert (await catalog.get("support-agent-v1")).greeting == created.greeting

    await store.update(created.model_copy(update={"greeting": "Hello from v2"}), expected_version=1)
    assert await catalog.refresh() is True
    assert (await catalog.get("support-agent-v1")).greeting == "Hello from v2"

    await store.set_status("support-agent-v1", AgentStatus.PAUSED)
    await catalog.refresh()
    assert (await catalog.get("support-agent-v1")).status == AgentStatus.PAUSED


async def test_rules_saves_and_new_agents_move_the_stamp(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    catalog = catalog_on(database)
    await catalog.refresh()
    with pytest.raises(AgentNotFound):
        await catalog.get("support-agent-v1")

    await store.create(support_config())
    assert await catalog.refresh() is True
    assert (await catalog.get("support-agent-v1")).version == 1

    assert await catalog.refresh() is False
    await RulesStore(database).save(DEFAULT_RULES.definition(), expected_version=0)
    assert await catalog.refresh() is True
    assert (await catalog.current()).version == 1


async def test_a_warm_room_is_one_small_query_whatever_the_chain_looked_at(
    endpoints: Endpoints, database_name: str
) -> None:
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(
        endpoints.mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    try:
        database = client[database_name]
        await seed_builtin_agents(ConfigStore(database))
        await ConfigStore(database).set_status(
            "sales-agent-v1", AgentStatus.PAUSED
        )  # the chain goes on
        catalog = catalog_on(database)
        router = Router(catalog, catalog.availability())
        await catalog.refresh()
        assert (await router.route(SALES_ROOM)).agent_id == "support-agent-v1"
        with pytest.raises(AgentNotFound):
            await catalog.get("no-such-agent")

        commands.seen.clear()
        for _ in range(5):  # five warm rooms, each looking at three configs and the rules
            await catalog.refresh()
            decision = await router.route(SALES_ROOM)
            await catalog.get(decision.agent_id or "")
            with pytest.raises(AgentNotFound):
                await catalog.get("no-such-agent")
        assert commands.seen == Counter({"find": 5})
    finally:
        await client.drop_database(database_name)
        await client.close()


async def test_an_edit_that_bypasses_the_stores_is_seen_after_max_age(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    await store.create(support_config())
    clock = FakeClock()
    catalog = catalog_on(database, max_age_s=30.0, clock=clock)
    await catalog.refresh()
    await catalog.get("support-agent-v1")

    await database["agent_configs"].update_one(
        {"agent_id": "support-agent-v1"}, {"$set": {"greeting": "Edited by hand", "version": 7}}
    )
    clock.now = 29.0
    await catalog.refresh()
    assert (await catalog.get("support-agent-v1")).greeting != "Edited by hand"
    clock.now = 30.0
    await catalog.refresh()
    assert (await catalog.get("support-agent-v1")).greeting == "Edited by hand"


async def test_unknown_agent_ids_are_remembered_only_up_to_max_unknown(
    endpoints: Endpoints, database_name: str
) -> None:
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(
        endpoints.mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    try:
        database = client[database_name]
        await ConfigStore(database).create(support_config())
        catalog = catalog_on(database, max_unknown=8)
        await catalog.refresh()
        await catalog.get("support-agent-v1")
        for n in range(200):  # ids from room metadata: anyone who starts a room picks them
            with pytest.raises(AgentNotFound):
                await catalog.get(f"unknown-{n}")
        assert catalog.held == 1 + 8

        # The most recent misses are still answered from memory; the oldest ones were dropped.
        commands.seen.clear()
        with pytest.raises(AgentNotFound):
            await catalog.get("unknown-199")
        assert (await catalog.get("support-agent-v1")).agent_id == "support-agent-v1"
        assert commands.seen == Counter()
        with pytest.raises(AgentNotFound):
            await catalog.get("unknown-0")
        assert commands.seen == Counter({"find": 1})
    finally:
        await client.drop_database(database_name)
        await client.close()


async def test_with_max_unknown_zero_unknown_agent_ids_are_not_kept(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    await store.create(support_config())
    catalog = catalog_on(database, max_unknown=0)
    await catalog.refresh()
    await catalog.get("support-agent-v1")
    for n in range(50):
        with pytest.raises(AgentNotFound):
            await catalog.get(f"unknown-{n}")
    assert catalog.held == 1


# -- how often the stamp is read ----------------------------------------------------------


async def test_the_stamp_is_read_at_most_every_check_interval_unless_forced_or_invalidated(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    created = await store.create(support_config())
    clock = FakeClock()
    catalog = catalog_on(database, check_every_s=1.0, clock=clock)
    await catalog.refresh()
    assert (await catalog.get("support-agent-v1")).version == 1

    await store.update(created, expected_version=1)  # another replica writes version 2
    clock.now = 0.5
    assert await catalog.refresh() is False
    assert (await catalog.get("support-agent-v1")).version == 1, (
        "within the interval: the documented staleness"
    )
    assert await catalog.refresh(force=True) is True
    assert (await catalog.get("support-agent-v1")).version == 2

    await RulesStore(database).save(DEFAULT_RULES.definition(), expected_version=0)
    catalog.invalidate()  # what the admin API does after a rules write of its own
    assert await catalog.refresh() is True
    assert (await catalog.current()).version == 1
    clock.now = 1.5
    assert await catalog.refresh() is False, "due again, but nothing moved"


async def test_a_write_of_this_process_is_served_at_once_and_a_conflict_rechecks(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    created = await store.create(support_config())
    catalog = catalog_on(database, check_every_s=600.0)
    await catalog.refresh()
    await catalog.get("support-agent-v1")

    catalog.remember(
        await store.update(created.model_copy(update={"greeting": "Mine"}), expected_version=1)
    )
    assert (await catalog.get("support-agent-v1")).greeting == "Mine"

    await store.update(created.model_copy(update={"greeting": "Theirs"}), expected_version=2)
    assert (await catalog.get("support-agent-v1")).greeting == "Mine"
    catalog.forget("support-agent-v1")  # a 412 said someone else saved
    assert (await catalog.get("support-agent-v1")).greeting == "Theirs"


# -- routing rules ------------------------------------------------------------------------


async def test_unchanged_rules_are_the_same_object_and_a_saved_edit_reaches_the_router(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    await seed_builtin_agents(store)
    catalog = catalog_on(database)
    router = Router(catalog, catalog.availability())
    await catalog.refresh()
    assert await catalog.current() is DEFAULT_RULES
    assert (await router.route(SALES_ROOM)).agent_id == "sales-agent-v1"

    await store.set_status("pte-interview-agent-v1", AgentStatus.PAUSED)  # a config write only
    await catalog.refresh()
    assert await catalog.current() is DEFAULT_RULES, "the router keeps its compiled chain"

    chain = DEFAULT_RULES.definition()
    chain["chain"][1]["params"]["agents"]["sales"] = "onboarding-agent-v1"
    await RulesStore(database).save(chain, expected_version=0)
    await catalog.refresh()
    decision = await router.route(SALES_ROOM)
    assert (decision.agent_id, decision.rules_version) == ("onboarding-agent-v1", 1)


async def test_a_hand_broken_rules_document_keeps_the_last_good_rules(
    store: ConfigStore, database: AsyncDatabase
) -> None:
    good = await RulesStore(database).save(DEFAULT_RULES, expected_version=0)
    catalog = catalog_on(database)
    await catalog.refresh()
    assert await catalog.current() == good

    broken = {
        "version": 2,
        "updated_at": None,
        "chain": [{"strategy": "default", "enabled": True, "params_json": "{"}],
    }
    await database[ROUTING_RULES].insert_one(broken)  # by hand: the stamp does not move
    await store.create(support_config())  # ... until this write: the rules are read again
    assert await catalog.refresh() is True
    assert await catalog.current() == good
    fresh = catalog_on(database)
    await fresh.refresh()
    with pytest.raises(InvalidRoutingRules, match="stored version 2 is unreadable"):
        await fresh.current()


# -- the database down --------------------------------------------------------------------


async def test_an_unreachable_database_without_a_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    port = reserve_port(0, "nothing", "UNUSED")
    client = open_client(f"mongodb://127.0.0.1:{port}/", timeout_ms=300)
    try:
        catalog = catalog_on(
            client["switchboard"], snapshot=CatalogSnapshot(tmp_path / "never-used")
        )
        with pytest.raises(DatabaseUnavailable, match="database unreachable"):
            await catalog.refresh()
    finally:
        await client.close()


async def test_offline_a_room_is_routed_from_the_snapshot_another_process_wrote(
    store: ConfigStore, database: AsyncDatabase, tmp_path: Path
) -> None:
    await seed_builtin_agents(store)
    online = catalog_on(database, snapshot=CatalogSnapshot(tmp_path / "catalog"))
    await online.refresh()
    assert (
        await Router(online, online.availability()).route(SALES_ROOM)
    ).agent_id == "sales-agent-v1"

    port = reserve_port(0, "nothing", "UNUSED")
    client = open_client(f"mongodb://127.0.0.1:{port}/", timeout_ms=300)
    try:
        offline = catalog_on(client["switchboard"], snapshot=CatalogSnapshot(tmp_path / "catalog"))
        assert await offline.refresh() is True and offline.offline
        decision = await Router(offline, offline.availability()).route(SALES_ROOM)
        assert (decision.agent_id, decision.rules_version) == ("sales-agent-v1", 0)
        assert (await offline.get("sales-agent-v1")).agent_id == "sales-agent-v1"
        with pytest.raises(AgentNotFound):  # never read by any process: unknown offline
            await offline.get("support-agent-v1")
    finally:
        await client.close()


# -- the snapshot shared by job processes ---------------------------------------------------


async def test_a_fresh_process_reads_only_the_stamp_when_the_snapshot_was_read_under_it(
    endpoints: Endpoints, database_name: str, tmp_path: Path
) -> None:
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(
        endpoints.mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    try:
        database = client[database_name]
        store = ConfigStore(database)
        await seed_builtin_agents(store)

        async def a_job_routes_a_sales_room() -> str:
            catalog = catalog_on(
                database, snapshot=CatalogSnapshot(tmp_path / "catalog")
            )  # a new job process
            await catalog.refresh()
            decision = await Router(catalog, catalog.availability()).route(SALES_ROOM)
            return (await catalog.get(decision.agent_id or "")).greeting or ""

        first = await a_job_routes_a_sales_room()
        commands.seen.clear()
        assert await a_job_routes_a_sales_room() == first
        assert commands.seen == Counter({"find": 1}), "the stamp read alone"

        sales = await store.get("sales-agent-v1")
        await store.update(
            sales.model_copy(update={"greeting": "Edited"}), expected_version=sales.version
        )
        commands.seen.clear()
        assert await a_job_routes_a_sales_room() == "Edited", (
            "the stamp moved: the snapshot is not trusted"
        )
        assert commands.seen["find"] > 1
    finally:
        await client.drop_database(database_name)
        await client.close()
