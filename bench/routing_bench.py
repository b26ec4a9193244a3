"""Routing-decision latency: metadata text in, RoutingDecision out.

    .venv/bin/python bench/routing_bench.py [--decisions 5000]

Uses MONGO_URI when set, otherwise starts the local devstack (FerretDB). Each scenario parses
a room's metadata and routes it, over a mix of rooms that exercise every outcome: explicit,
purpose, user attributes, the default, and a fallthrough past a paused agent type. The
catalog scenarios (agent_configs/catalog.py) refresh before each decision as its users do:
the worker reads the change stamp for every room, the admin API at most once a second, and
with `max_age_s=0` every refresh re-checks every config and re-reads the rules.
Not part of the test suite.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.catalog import Catalog
from agent_configs.changes import ChangeStamp
from agent_configs.database import open_client
from agent_configs.files import DEFAULTS_DIR, load_config_dir
from agent_configs.models import AgentStatus
from agent_configs.routing import (
    DEFAULT_RULES,
    AvailabilityCheck,
    MemoryAvailability,
    Router,
    RoutingContext,
    RulesSource,
    RulesStore,
    StaticRules,
    StoreAvailability,
)
from agent_configs.store import ConfigStore
from devstack import DEFAULT_ROOT, Devstack

ROOMS = [
    '{"agent_id": "sales-agent-v1", "user_id": "u-1"}',
    '{"purpose": "support", "user_id": "u-2", "user_details": {"tier": "premium"}}',
    '{"purpose": "interview", "user_id": "u-3"}',  # paused: falls through to the default
    '{"user_id": "u-4", "user_details": {"is_new_user": true}}',
    '{"user_id": "u-5", "user_details": {"tier": "free"}}',
    "",
]
WARMUP = 200


async def measure(route_one: Callable[[str], Awaitable[object]], decisions: int) -> list[float]:
    for n in range(WARMUP):
        await route_one(ROOMS[n % len(ROOMS)])
    timings = []
    for n in range(decisions):
        started = time.perf_counter()
        await route_one(ROOMS[n % len(ROOMS)])
        timings.append(time.perf_counter() - started)
    return timings


def router_for(
    rules: RulesSource, availability: AvailabilityCheck
) -> Callable[[str], Awaitable[object]]:
    router = Router(rules, availability)

    async def route_one(metadata: str) -> object:
        if isinstance(rules, Catalog):
            await rules.refresh()
        decision = await router.route(RoutingContext.from_metadata(metadata))
        assert decision.agent_id is not None, decision.summary()
        return decision

    return route_one


async def seed(database: AsyncDatabase) -> tuple[ConfigStore, RulesStore]:
    configs, errors = load_config_dir(DEFAULTS_DIR)
    assert not errors, errors
    store = ConfigStore(database)
    await store.ensure_indexes()
    for config in configs:
        await store.create(config)
    await store.set_status("pte-interview-agent-v1", AgentStatus.PAUSED)
    rules = RulesStore(database)
    await rules.save(DEFAULT_RULES, expected_version=0)
    return store, rules


async def scenarios(database: AsyncDatabase) -> dict[str, Callable[[str], Awaitable[object]]]:
    store, rules_store = await seed(database)
    in_memory = MemoryAvailability((await store.list_agents(limit=200)).items)
    static = StaticRules(await rules_store.current())

    def catalog_router(**options: Any) -> Callable[[str], Awaitable[object]]:
        catalog = Catalog(store, rules_store, ChangeStamp(database), **options)
        return router_for(catalog, catalog.availability())

    return {
        "in-memory availability, fixed rules": router_for(static, in_memory),
        "ConfigStore availability, fixed rules": router_for(static, StoreAvailability(store)),
        "catalog, stamp read every room (worker)": catalog_router(),
        "catalog, stamp read <= 1/s (admin API)": catalog_router(check_every_s=1.0),
        "catalog, everything re-read (max age 0)": catalog_router(max_age_s=0.0),
    }


def percentile(sorted_values: list[float], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def print_table(results: dict[str, list[float]], decisions: int) -> None:
    print(f"\nrouting decision latency over {decisions} decisions (ms)")
    header = f"{'scenario':<42}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}{'per s':>9}"
    print(header)
    print("-" * len(header))
    for name, timings in results.items():
        ordered = sorted(timings)
        p50, p95, p99 = (percentile(ordered, q) * 1000 for q in (0.50, 0.95, 0.99))
        mean = statistics.fmean(ordered)
        print(f"{name:<42}{p50:>9.3f}{p95:>9.3f}{p99:>9.3f}{mean * 1000:>9.3f}{1 / mean:>9.0f}")


async def run(mongo_uri: str, decisions: int) -> None:
    client = open_client(mongo_uri)
    name = f"bench_routing_{uuid.uuid4().hex[:8]}"
    try:
        results = {}
        for label, route_one in (await scenarios(client[name])).items():
            results[label] = await measure(route_one, decisions)
        print_table(results, decisions)
    finally:
        await client.drop_database(name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=5000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as run_dir,
        Devstack(DEFAULT_ROOT, run_dir=Path(run_dir), llm_port=None) as endpoints,
    ):
        asyncio.run(run(endpoints.mongo_uri, args.decisions))


if __name__ == "__main__":
    main()
