"""Where Switchboard's session start goes inside the job process, step by step.

    .venv/bin/python -m bench.session_start        # runs this at its end, on the same stack
    .venv/bin/python -m bench.start_steps          # alone: its own FerretDB, no LiveKit rooms

Replays, in-process on the real FerretDB, the steps worker/server.py `entrypoint` takes before
the greeting that do not need a room, in the same order, with the same objects:

    process services (client, catalog) -> change stamp (`Catalog.refresh`)
    -> route (Router over the Catalog's rules and availability) -> Catalog.get (`_route_and_claim`)
    -> per-user memory query (`_build_agent`) -> build_models -> ConfiguredAgent + AgentSession

`cold` = a new MongoDB client and an empty catalog over the worker's catalog snapshot on disk,
which is what every session gets: livekit runs each job in a fresh process, and the snapshot
(written by the first cold start, read under the same change stamp by the rest) is what it
has from the jobs before. `warm` = the same objects reused. Each step reports wall
time and its MongoDB round trips (pymongo command monitoring). The per-user memory query is
also timed against a `turns` collection holding 1,000 and 5,000 other users' turns, with and without an
index on (agent_id, user_id, created_at), because the worker creates none.

The steps that need a room (ctx.connect, session.start, set_attributes) are measured from the
worker's own log lines by bench/session_start.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, monitoring

from bench.harness import SUPPORT_AGENT, fmt, print_table, summary

CONTEXT_METADATA = (
    '{"purpose": "support", "user_id": "bench-steps-user", "user_details": {"tier": "free"}}'
)
OTHER_TURNS = (1000, 5000)


class CommandLog(monitoring.CommandListener):
    """Every command sent, with its server-side duration (µs), in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("hello", "isMaster", "ismaster", "endSessions"):
            return
        self.events.append((event.command_name, event.database_name, event.duration_micros))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.events.append((event.command_name, "failed", event.duration_micros))


_log = CommandLog()
_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        monitoring.register(_log)
        _registered = True


class Steps:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.trips: dict[str, list[int]] = defaultdict(list)

    async def time(self, name: str, awaitable_or_fn: Any) -> Any:
        before = len(_log.events)
        started = time.perf_counter()
        result = awaitable_or_fn() if callable(awaitable_or_fn) else awaitable_or_fn
        if asyncio.iscoroutine(result):
            result = await result
        self.ms[name].append((time.perf_counter() - started) * 1000)
        self.trips[name].append(len(_log.events) - before)
        return result


async def _one_start(
    steps: Steps,
    mongo_uri: str,
    db_name: str,
    llm_url: str,
    snapshot_dir: Path,
    reuse: dict[str, Any] | None,
) -> dict[str, Any]:
    from agent_configs.catalog import Catalog
    from agent_configs.changes import ChangeStamp
    from agent_configs.routing import Router, RoutingContext, RulesStore
    from agent_configs.snapshot import CatalogSnapshot
    from agent_configs.store import ConfigStore
    from worker.memory import load_past_messages
    from worker.session import ConfiguredAgent, build_models, new_session
    from worker.settings import WorkerSettings
    from worker.turns import StructuredCaller

    if reuse is None:

        def services() -> dict[str, Any]:
            settings = WorkerSettings(mongo_uri=mongo_uri, mongo_db=db_name, local_llm_url=llm_url)
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                mongo_uri, tz_aware=True, appname="switchboard"
            )
            database = client[db_name]
            catalog = Catalog(
                ConfigStore(database),
                RulesStore(database),
                ChangeStamp(database),
                max_age_s=settings.routing_rules_ttl_s,
                snapshot=CatalogSnapshot(snapshot_dir),
            )
            router = Router(catalog, catalog.availability())
            return {
                "settings": settings,
                "client": client,
                "database": database,
                "catalog": catalog,
                "router": router,
            }

        reuse = await steps.time("process services (settings, client, catalog)", services)
    context = RoutingContext.from_metadata(CONTEXT_METADATA)
    await steps.time("change stamp (Catalog.refresh)", reuse["catalog"].refresh())
    decision = await steps.time(
        "route (rules + availability: Catalog)", reuse["router"].route(context)
    )
    config = await steps.time(
        "Catalog.get (_route_and_claim)", reuse["catalog"].get(decision.agent_id)
    )
    await steps.time(
        "per-user memory query (turns)",
        load_past_messages(
            reuse["database"], config.agent_id, context.user_id or "", config.memory.max_past_turns
        ),
    )
    models = await steps.time(
        "build_models (openai.LLM)", build_models(config, reuse["settings"], None)
    )
    await steps.time(
        "ConfiguredAgent + AgentSession",
        lambda: (ConfiguredAgent(config, models, []), new_session(config, models)),
    )
    await steps.time(
        "(per reply, after greeting) StructuredCaller (shared clients)",
        lambda: StructuredCaller(models.endpoints),
    )
    return reuse


async def _memory_scaling(mongo_uri: str, db_name: str, reps: int) -> dict[str, Any]:
    """The per-user memory query with other users' turns in the collection, then with an index."""
    from worker.memory import load_past_messages

    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    turns = client[db_name]["turns"]
    marker = f"bench-steps-{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {}
    try:

        async def measure(label: str) -> None:
            timings = []
            for _ in range(reps):
                started = time.perf_counter()
                await load_past_messages(client[db_name], SUPPORT_AGENT, "bench-steps-user", 20)
                timings.append((time.perf_counter() - started) * 1000)
            results[label] = summary(timings)

        existing = await turns.count_documents({})
        await measure(f"{existing} turns in the collection")
        now = datetime.now(UTC)
        inserted = 0
        for size in OTHER_TURNS:
            await turns.insert_many(
                [
                    {
                        "_id": f"{marker}:{n}",
                        "agent_id": SUPPORT_AGENT,
                        "user_id": f"{marker}-u{n % 500}",
                        "user_text": "My login is not working",
                        "fields": {"system_response": "Let us reset your password."},
                        "created_at": now - timedelta(seconds=n),
                        "bench_marker": marker,
                    }
                    for n in range(inserted, size)
                ]
            )
            inserted = size
            await measure(f"+{size} other users' turns, no index")
        index = await turns.create_index(
            [("agent_id", ASCENDING), ("user_id", ASCENDING), ("created_at", DESCENDING)]
        )
        await measure(f"+{inserted} other users' turns, index (agent_id, user_id, created_at)")
        await turns.drop_index(index)
        await turns.delete_many({"bench_marker": marker})
    finally:
        await client.close()
    return results


async def _housekeeping_scaling(mongo_uri: str, db_name: str, reps: int) -> dict[str, Any]:
    """`abort_stale_sessions` (run at every job start since the scaling change) against a
    `sessions` collection holding ended sessions; skipped when the worker has no such step."""
    try:
        from worker.records import abort_stale_sessions
    except ImportError:
        return {}
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    sessions = client[db_name]["sessions"]
    marker = f"bench-steps-{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {}
    try:

        async def measure(label: str) -> None:
            timings = []
            for _ in range(reps):
                started = time.perf_counter()
                await abort_stale_sessions(client[db_name], 120.0)
                timings.append((time.perf_counter() - started) * 1000)
            results[label] = summary(timings)

        await measure(f"{await sessions.count_documents({})} sessions in the collection")
        now = datetime.now(UTC)
        inserted = 0
        for size in OTHER_TURNS:
            await sessions.insert_many(
                [
                    {
                        "_id": f"{marker}:{n}",
                        "session_id": f"{marker}:{n}",
                        "agent_id": SUPPORT_AGENT,
                        "status": "ended",
                        "started_at": now - timedelta(seconds=n),
                        "transcript": [{"role": "user", "text": "My login is not working"}] * 4,
                        "bench_marker": marker,
                    }
                    for n in range(inserted, size)
                ]
            )
            inserted = size
            await measure(f"+{size} ended sessions")
        await sessions.delete_many({"bench_marker": marker})
    finally:
        await client.close()
    return results


async def profile(mongo_uri: str, db_name: str, llm_url: str, reps: int = 20) -> dict[str, Any]:
    """Cold and warm step timings plus the memory-query scaling; also prints the tables."""
    _register()
    cold, warm = Steps(), Steps()
    with tempfile.TemporaryDirectory() as snapshots:  # the worker's catalog_dir, one per database
        snapshot_dir = Path(snapshots) / db_name
        for _ in range(reps):
            services = await _one_start(cold, mongo_uri, db_name, llm_url, snapshot_dir, None)
            await services["client"].close()
        reuse = await _one_start(
            Steps(), mongo_uri, db_name, llm_url, snapshot_dir, None
        )  # primes the catalog
        for _ in range(reps):
            await _one_start(warm, mongo_uri, db_name, llm_url, snapshot_dir, reuse)
        await reuse["client"].close()
    memory = await _memory_scaling(mongo_uri, db_name, max(5, reps // 2))
    housekeeping = await _housekeeping_scaling(mongo_uri, db_name, max(5, reps // 2))

    rows = []
    total_cold = total_warm = 0.0
    for name in cold.ms:
        c50, w50 = statistics.median(cold.ms[name]), statistics.median(warm.ms.get(name, [0.0]))
        if not name.startswith("(per reply"):
            total_cold += c50
            total_warm += w50
        rows.append(
            [
                name,
                fmt(c50, digits=2),
                fmt(percentile95(cold.ms[name]), digits=2),
                f"{statistics.median(cold.trips[name]):.0f}",
                fmt(w50, digits=2) if name in warm.ms else "-",
                f"{statistics.median(warm.trips[name]):.0f}" if name in warm.ms else "-",
            ]
        )
    rows.append(
        [
            "sum of medians (start steps)",
            fmt(total_cold, digits=2),
            "",
            "",
            fmt(total_warm, digits=2),
            "",
        ]
    )
    print_table(
        f"Switchboard entrypoint steps before the greeting, in-process (ms, {reps} reps; no room needed)",
        ["step", "cold p50", "cold p95", "cold trips", "warm p50", "warm trips"],
        rows,
    )
    print_table(
        "per-user memory query (load_past_messages) vs turns collection (ms)",
        ["turns collection", "p50", "p95"],
        [[label, fmt(s["p50"], digits=2), fmt(s["p95"], digits=2)] for label, s in memory.items()],
    )
    if housekeeping:
        print_table(
            "job-start housekeeping (abort_stale_sessions, in a task beside the connect) vs sessions collection (ms)",
            ["sessions collection", "p50", "p95"],
            [
                [label, fmt(s["p50"], digits=2), fmt(s["p95"], digits=2)]
                for label, s in housekeeping.items()
            ],
        )
    return {
        "housekeeping": housekeeping,
        "cold": {
            n: {"ms": summary(v), "round_trips": statistics.median(cold.trips[n])}
            for n, v in cold.ms.items()
        },
        "warm": {
            n: {"ms": summary(v), "round_trips": statistics.median(warm.trips[n])}
            for n, v in warm.ms.items()
        },
        "memory_query": memory,
        "commands_seen": sorted({name for name, _, _ in _log.events}),
    }


def percentile95(values: list[float]) -> float | None:
    return summary(values)["p95"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    from bench.harness import machine_info, seed_database, write_results
    from devstack import DEFAULT_ROOT, Devstack

    info = machine_info()
    with (
        tempfile.TemporaryDirectory() as run_dir,
        Devstack(DEFAULT_ROOT, run_dir=Path(run_dir), llm_port=None) as endpoints,
    ):
        name = f"bench_steps_{uuid.uuid4().hex[:8]}"
        asyncio.run(seed_database(endpoints.mongo_uri, name))
        result = asyncio.run(profile(endpoints.mongo_uri, name, "http://127.0.0.1:9/v1", args.reps))
        from bench.harness import drop_database

        asyncio.run(drop_database(endpoints.mongo_uri, name))
    path = write_results("start_steps", {"machine": info, "args": vars(args), "results": result})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
