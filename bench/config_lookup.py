"""Routing + config lookup per room, the way the worker does it, with MongoDB round trips.

    .venv/bin/python -m bench.config_lookup [--rooms 2000] [--cold-rooms 40]

For every room the worker parses the metadata, reads the change stamp (`Catalog.refresh`),
routes it (Router over the Catalog's rules and availability) and then reads the chosen agent
type's config from the same Catalog (worker/server.py `_route_and_claim`). This bench builds
exactly those objects on the real FerretDB and times metadata-in -> config-out:

- warm: one client and the same catalog for every room (the target: p95 <= 2 ms);
- cold, no snapshot: a new client and an empty catalog per room, with nothing on disk: a
  fresh job process (livekit-agents runs each job in one) on a worker that has never read
  the catalog, or whose snapshot was read under an older stamp;
- cold, snapshot: the same, with the worker's catalog snapshot (`CatalogSnapshot`) read
  under the current stamp, which is what a real session gets while nothing is edited;
- floor: the same chain with rules and configs already in memory (no database at all).

The round trips per room are counted with pymongo command monitoring. The colleague's
bench/routing_bench.py covers routing alone across availability/rules variants.
Starts its own FerretDB (and LiveKit, unused); writes bench/results/config_lookup-*.json.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import AsyncMongoClient, monitoring

from agent_configs.catalog import Catalog
from agent_configs.changes import ChangeStamp
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import AgentConfig
from agent_configs.routing import (
    MemoryAvailability,
    Router,
    RoutingContext,
    RulesStore,
    StaticRules,
)
from agent_configs.snapshot import CatalogSnapshot
from agent_configs.store import ConfigStore
from bench.harness import (
    LoadWatch,
    fmt,
    machine_info,
    print_table,
    summary,
    write_results,
)
from devstack import DEFAULT_ROOT, Devstack

ROOMS = [  # the same mix as bench/routing_bench.py: every strategy, and the default
    '{"agent_id": "sales-agent-v1", "user_id": "u-1"}',
    '{"purpose": "support", "user_id": "u-2", "user_details": {"tier": "premium"}}',
    '{"purpose": "interview", "user_id": "u-3"}',
    '{"user_id": "u-4", "user_details": {"is_new_user": true}}',
    '{"user_id": "u-5", "user_details": {"tier": "free"}}',
    "",
]
WARMUP = 200
RULES_TTL_S = 30.0  # the worker's default ROUTING_RULES_TTL_S


class CommandCounter(monitoring.CommandListener):
    """Counts the commands (round trips) every client in this process sends."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("hello", "isMaster", "ismaster", "endSessions"):
            self.commands[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def total(self) -> int:
        return sum(self.commands.values())


LookupOne = Callable[[str], Awaitable[AgentConfig]]


def worker_lookup(database, snapshot: CatalogSnapshot | None = None) -> LookupOne:
    """The worker's per-process objects; one call = one room's route + config read."""
    catalog = Catalog(
        ConfigStore(database),
        RulesStore(database),
        ChangeStamp(database),
        max_age_s=RULES_TTL_S,
        snapshot=snapshot,
    )
    router = Router(catalog, catalog.availability())

    async def lookup(metadata: str) -> AgentConfig:
        await catalog.refresh()
        decision = await router.route(RoutingContext.from_metadata(metadata))
        assert decision.agent_id is not None, decision.summary()
        return await catalog.get(decision.agent_id)

    return lookup


def memory_lookup(configs: list[AgentConfig], rules) -> LookupOne:
    by_id = {c.agent_id: c for c in configs}
    router = Router(StaticRules(rules), MemoryAvailability(configs))

    async def lookup(metadata: str) -> AgentConfig:
        decision = await router.route(RoutingContext.from_metadata(metadata))
        assert decision.agent_id is not None, decision.summary()
        return by_id[decision.agent_id]

    return lookup


async def timed(
    lookup: LookupOne, rooms: int, counter: CommandCounter
) -> tuple[list[float], float]:
    for n in range(WARMUP):
        await lookup(ROOMS[n % len(ROOMS)])
    before = counter.total()
    timings = []
    for n in range(rooms):
        started = time.perf_counter()
        await lookup(ROOMS[n % len(ROOMS)])
        timings.append(time.perf_counter() - started)
    return timings, (counter.total() - before) / rooms


async def timed_cold(
    mongo_uri: str, name: str, rooms: int, counter: CommandCounter, snapshot: CatalogSnapshot | None
) -> tuple[list[float], float]:
    """A new client and an empty catalog per room, as in a fresh job process; with a snapshot,
    every room kind is looked up once first, so the files carry the current stamp."""

    async def one_room(metadata: str) -> None:
        client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True, appname="switchboard")
        try:
            await worker_lookup(client[name], snapshot)(metadata)
        finally:
            await client.close()

    if snapshot is not None:
        for metadata in ROOMS:
            await one_room(metadata)
    timings = []
    before = counter.total()
    for n in range(rooms):
        started = time.perf_counter()
        await one_room(ROOMS[n % len(ROOMS)])
        timings.append(time.perf_counter() - started)
    return timings, (counter.total() - before) / rooms


async def run(mongo_uri: str, rooms: int, cold_rooms: int, snapshot_dir: Path) -> dict[str, Any]:
    counter = CommandCounter()
    monitoring.register(counter)  # applies to clients created from now on
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True, appname="switchboard")
    name = f"bench_lookup_{uuid.uuid4().hex[:8]}"
    try:
        database = client[name]
        from scripts.setup_agents import seed, seed_routing_rules

        configs, errors = load_config_dir(DEFAULTS_DIR)
        assert not errors, errors
        store = ConfigStore(database)
        await seed(store, configs)
        await seed_routing_rules(database)
        stored = (await store.list_agents(limit=200)).items
        rules = await RulesStore(database).current()

        results: dict[str, tuple[list[float], float]] = {}
        results["warm: worker objects (change stamp + catalog)"] = await timed(
            worker_lookup(database), rooms, counter
        )
        results["cold: new client + empty catalog, no snapshot"] = await timed_cold(
            mongo_uri, name, cold_rooms, counter, None
        )
        results["cold: new client + empty catalog, current snapshot"] = await timed_cold(
            mongo_uri, name, cold_rooms, counter, CatalogSnapshot(snapshot_dir / name)
        )
        results["floor: rules + configs in memory"] = await timed(
            memory_lookup(stored, rules), rooms, counter
        )
        return {
            label: {"ms": summary([t * 1000 for t in ts]), "round_trips_per_room": trips}
            for label, (ts, trips) in results.items()
        }
    finally:
        await client.drop_database(name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--cold-rooms", type=int, default=40)
    args = parser.parse_args()
    info = machine_info()
    with (
        LoadWatch() as load,
        tempfile.TemporaryDirectory() as run_dir,
        Devstack(DEFAULT_ROOT, run_dir=Path(run_dir), llm_port=None) as endpoints,
    ):
        results = asyncio.run(
            run(endpoints.mongo_uri, args.rooms, args.cold_rooms, Path(run_dir) / "catalog")
        )
    rows = [
        [
            label,
            fmt(r["ms"]["p50"]),
            fmt(r["ms"]["p95"]),
            fmt(r["ms"]["max"]),
            f"{r['round_trips_per_room']:.2f}",
            str(r["ms"]["n"]),
        ]
        for label, r in results.items()
    ]
    print_table(
        f"routing + config lookup per room (ms), FerretDB on loopback; load avg {info['loadavg_at_start'][0]:.2f}",
        ["scenario", "p50", "p95", "max", "DB trips/room", "rooms"],
        rows,
    )
    warm = next(iter(results.values()))
    print(
        f"\ntarget: warm p95 <= 2 ms -> {fmt(warm['ms']['p95'])} ms "
        f"({'met' if warm['ms']['p95'] is not None and warm['ms']['p95'] <= 2 else 'NOT met'})"
    )
    path = write_results(
        "config_lookup",
        {"machine": info, "load": load.report(), "args": vars(args), "results": results},
    )
    print(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
