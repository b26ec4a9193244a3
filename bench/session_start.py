"""Session start: a client joining a room -> the agent's greeting on `lk.transcription`,
Switchboard (`python -m worker start`) against a bare livekit-agents worker.

    .venv/bin/python -m bench.session_start [--sessions 20] [--no-steps]

One run starts the devstack (LiveKit server, FerretDB, local LLM), seeds a fresh database with
the built-in agent types made text-only, and runs both workers side by side on the same LiveKit
server (bench/harness.py). Sessions are interleaved, one at a time, the order alternating each
round; between two sessions the bench waits until both workers have no job and the LLM is idle,
plus a short settle so each worker's idle process pool is refilled. One warm-up session per
worker is not counted.

The clock starts when the client starts `room.connect` with a token whose RoomConfiguration
explicitly dispatches the worker's agent name (metadata `{"purpose": "support", ...}` in the
dispatch and on the participant, as a frontend sends it) and stops when the greeting text has
arrived. The worker's own log lines (JSON, same machine clock) split the time into stages,
and the slowest starts of each worker are listed with the step that grew most against its
median (what a p95 is made of). Then bench/start_steps.py replays the in-process entrypoint
steps on the same database.

Target: Switchboard p50 and p95 <= 1.05x bare. Writes bench/results/session_start-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BenchStack,
    LoadWatch,
    WorkerProcess,
    fmt,
    machine_info,
    print_table,
    ratio,
    summary,
    write_results,
)

KINDS = ("switchboard", "bare")
GREETING_TIMEOUT_S = 60.0

# (label, source) for the start-up stages, in order; sources are the client's own clock or a
# worker log line (message prefix) with the room name.
STAGES: list[tuple[str, str]] = [
    ("client: room.connect returned", "client:connected"),
    ("livekit: job assigned to worker", "lk:assigned job to worker"),
    ("worker: job request received", "log:received job request"),
    ("bare: entrypoint entered", "log:bare: entrypoint"),
    ("livekit: agent starts RTC session (ctx.connect)", "lk:agent starting RTC session"),
    ("livekit: agent participant active", "lk:agent participant active"),
    ("bare: ctx.connect done", "log:bare: connected"),
    ("switchboard: routed (after connect + DB)", "log:routed:"),
    ("RoomIO linked (session.start)", "log:RoomIO linked to participant"),
    ("bare: session started", "log:bare: session started"),
    ("client: agent participant visible", "client:agent_joined"),
    ("client: greeting first byte", "client:greeting_open"),
    ("client: greeting complete", "client:greeting_done"),
]


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def room_log_times(worker: WorkerProcess) -> dict[str, dict[str, float]]:
    """room -> {message prefix: first time it was logged for that room}."""
    prefixes = [source.removeprefix("log:") for _, source in STAGES if source.startswith("log:")]
    rooms: dict[str, dict[str, float]] = {}
    for event in worker.log_events():
        room = event.get("room") or event.get("bench_room")
        message = str(event.get("message", ""))
        if not room or "timestamp" not in event:
            continue
        for prefix in prefixes:
            if message.startswith(prefix):
                rooms.setdefault(room, {}).setdefault(prefix, _epoch(event["timestamp"]))
    return rooms


def livekit_log_times(log_path: Path) -> dict[str, dict[str, float]]:
    """room -> {stage key: time} from the LiveKit server's log (tab-separated, JSON fields last)."""
    rooms: dict[str, dict[str, float]] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return rooms
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 6:
            continue
        message = parts[4]
        try:
            fields = json.loads(parts[5])
        except ValueError:
            continue
        agent = str(fields.get("participant", "")).startswith("agent-")
        key = {
            ("assigned job to worker", False): "assigned job to worker",
            ("starting RTC session", True): "agent starting RTC session",
            ("participant active", True): "agent participant active",
        }.get((message, agent))
        room = fields.get("room")
        if key and room:
            rooms.setdefault(room, {}).setdefault(key, _epoch(parts[0].replace("Z", "+00:00")))
    return rooms


def process_init_times(worker: WorkerProcess) -> list[float]:
    """`process initialized` elapsed times: a job process's start-up and prewarm."""
    return [
        float(e["elapsed_time"])
        for e in worker.log_events()
        if e.get("message") == "process initialized" and "elapsed_time" in e
    ]


async def one_start(stack: BenchStack, kind: str, index: int) -> dict[str, Any]:
    metadata = {
        "purpose": "support",
        "user_id": f"bench-start-{kind}-{index}",
        "user_details": {"tier": "free"},
    }
    client = stack.client(kind, metadata)
    sample: dict[str, Any] = {"kind": kind, "index": index, "room": client.room_name, "ok": False}
    try:
        await client.join()
        greeting = await client.wait_transcripts(1, GREETING_TIMEOUT_S)
        start = client.join_started_at
        assert start is not None and client.connected_at is not None
        sample.update(
            ok=True,
            join_started_at=start,
            connected_s=client.connected_at - start,
            agent_joined_s=(client.agent_joined_at - start) if client.agent_joined_at else None,
            greeting_open_s=greeting.opened_at - start,
            greeting_done_s=greeting.done_at - start,
            greeting=greeting.text,
        )
    except (TimeoutError, AssertionError, Exception) as exc:
        sample["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await client.leave()
    return sample


def attach_stages(samples: list[dict[str, Any]], stack: BenchStack) -> None:
    logs = {kind: room_log_times(stack.workers[kind]) for kind in KINDS}
    livekit = livekit_log_times(stack.run_dir / "logs" / "livekit-server.log")
    for sample in samples:
        if not sample["ok"]:
            continue
        start = sample["join_started_at"]
        room = logs[sample["kind"]].get(sample["room"], {})
        room_lk = livekit.get(sample["room"], {})
        stages: dict[str, float] = {}
        for label, source in STAGES:
            where, key = source.split(":", 1)
            if where == "client":
                value = sample.get(f"{key}_s")
                if value is not None:
                    stages[label] = value
            elif where == "log" and key in room:
                stages[label] = room[key] - start
            elif where == "lk" and key in room_lk:
                stages[label] = room_lk[key] - start
        sample["stages_s"] = stages


async def run_sessions(
    stack: BenchStack, sessions: int, settle_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    quiet_log = []
    for kind in KINDS:  # warm-up: first job, first LLM client, first DB connection of each worker
        await one_start(stack, kind, -1)
        quiet_log.append(await asyncio.to_thread(stack.wait_quiet, 60.0, settle_s))
    samples = []
    for index in range(sessions):
        order = KINDS if index % 2 == 0 else tuple(reversed(KINDS))
        for kind in order:
            sample = await one_start(stack, kind, index)
            samples.append(sample)
            quiet = await asyncio.to_thread(stack.wait_quiet, 60.0, settle_s)
            quiet_log.append(quiet)
            state = (
                f"{sample['greeting_done_s'] * 1000:7.0f} ms"
                if sample["ok"]
                else f"FAILED {sample.get('error')}"
            )
            print(f"  [{index + 1:2d}/{sessions}] {kind:<12} {state}", flush=True)
    return samples, quiet_log


def report(samples: list[dict[str, Any]], stack: BenchStack) -> dict[str, Any]:
    by_kind = {kind: [s for s in samples if s["kind"] == kind and s["ok"]] for kind in KINDS}
    metrics = {
        "greeting complete (session start)": "greeting_done_s",
        "greeting first byte": "greeting_open_s",
        "agent participant visible": "agent_joined_s",
        "client room.connect": "connected_s",
    }
    table_rows, headline = [], {}
    for label, key in metrics.items():
        stats = {
            kind: summary([s[key] * 1000 for s in by_kind[kind] if s.get(key) is not None])
            for kind in KINDS
        }
        r50 = ratio(stats["switchboard"]["p50"], stats["bare"]["p50"])
        r95 = ratio(stats["switchboard"]["p95"], stats["bare"]["p95"])
        headline[label] = {"ms": stats, "ratio_p50": r50, "ratio_p95": r95}
        table_rows.append(
            [
                label,
                fmt(stats["switchboard"]["p50"], digits=0),
                fmt(stats["switchboard"]["p95"], digits=0),
                fmt(stats["bare"]["p50"], digits=0),
                fmt(stats["bare"]["p95"], digits=0),
                fmt(r50, "x", 2),
                fmt(r95, "x", 2),
            ]
        )
    ok = {
        kind: f"{len(by_kind[kind])}/{sum(1 for s in samples if s['kind'] == kind)}"
        for kind in KINDS
    }
    print_table(
        f"session start, ms from room.connect (ok: switchboard {ok['switchboard']}, bare {ok['bare']})",
        ["measure", "sb p50", "sb p95", "bare p50", "bare p95", "ratio p50", "ratio p95"],
        table_rows,
    )

    stage_rows, stages = [], {}
    for label, _ in STAGES:
        medians = {}
        for kind in KINDS:
            values = [
                s["stages_s"][label] * 1000 for s in by_kind[kind] if label in s.get("stages_s", {})
            ]
            medians[kind] = statistics.median(values) if values else None
        stages[label] = medians
        if any(v is not None for v in medians.values()):
            bare, ours = medians["bare"], medians["switchboard"]
            delta = ours - bare if ours is not None and bare is not None else None
            stage_rows.append(
                [
                    label,
                    fmt(medians["switchboard"], digits=0),
                    fmt(medians["bare"], digits=0),
                    fmt(delta, digits=0),
                ]
            )
    print_table(
        "where the time goes: median ms from room.connect, by stage",
        ["stage", "switchboard", "bare", "delta"],
        stage_rows,
    )

    slow = slowest_starts(by_kind, stages)

    inits = {kind: process_init_times(stack.workers[kind]) for kind in KINDS}
    init_stats = {kind: summary([v * 1000 for v in values]) for kind, values in inits.items()}
    print_table(
        "job process start-up ('process initialized' elapsed, incl. prewarm; off the critical path "
        "while the idle pool has a process ready)",
        ["worker", "p50 ms", "p95 ms", "processes"],
        [
            [kind, fmt(s["p50"], digits=0), fmt(s["p95"], digits=0), str(s["n"])]
            for kind, s in init_stats.items()
        ],
    )
    return {
        "headline": headline,
        "stages_median_ms": stages,
        "slowest_starts": slow,
        "process_init_ms": init_stats,
    }


SLOWEST = 3


def slowest_starts(
    by_kind: dict[str, list[dict[str, Any]]], medians: dict[str, dict[str, float | None]]
) -> list[dict[str, Any]]:
    """The slowest starts of each worker, and the stage where each lost its time: the step
    from the stage before that grew most against the same step's median (the p95 is made of
    these sessions)."""
    rows, found = [], []
    for kind in KINDS:
        for sample in sorted(by_kind[kind], key=lambda s: s["greeting_done_s"])[-SLOWEST:]:
            stages = sample.get("stages_s", {})
            previous_at, previous_median, worst = 0.0, 0.0, ("-", 0.0)
            for label, _ in STAGES:
                median = medians[label][kind]
                if label not in stages or median is None:
                    continue
                at = stages[label] * 1000
                excess = (at - previous_at) - (median - previous_median)
                if excess > worst[1]:
                    worst = (label, excess)
                previous_at, previous_median = at, median
            found.append(
                {
                    "kind": kind,
                    "room": sample["room"],
                    "index": sample["index"],
                    "greeting_done_ms": sample["greeting_done_s"] * 1000,
                    "step_that_grew": worst[0],
                    "step_excess_ms": worst[1],
                }
            )
            rows.append(
                [
                    kind,
                    str(sample["index"]),
                    fmt(sample["greeting_done_s"] * 1000, digits=0),
                    worst[0],
                    fmt(worst[1], digits=0),
                ]
            )
    print_table(
        f"the {SLOWEST} slowest starts of each worker: the step (ending at the stage named) that "
        "took longest beyond its median",
        ["worker", "session", "ms", "step ending at", "+ms vs median"],
        rows,
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="measured sessions per worker")
    parser.add_argument(
        "--settle", type=float, default=1.5, help="seconds of quiet between sessions"
    )
    parser.add_argument("--no-steps", action="store_true", help="skip the in-process step profile")
    args = parser.parse_args()
    info = machine_info()
    started = time.monotonic()
    with LoadWatch() as load, BenchStack(max_sessions=32) as stack:
        assert stack.endpoints and stack.endpoints.local_llm_url
        print(f"stack up in {time.monotonic() - started:.1f}s; run dir {stack.run_dir}", flush=True)
        samples, quiet = asyncio.run(run_sessions(stack, args.sessions, args.settle))
        attach_stages(samples, stack)
        result = report(samples, stack)
        steps = None
        if not args.no_steps:
            from bench.start_steps import profile

            steps = asyncio.run(
                profile(
                    stack.endpoints.mongo_uri, stack.database_name, stack.endpoints.local_llm_url
                )
            )
    headline = result["headline"]["greeting complete (session start)"]
    print(
        f"\ntarget: session start <= 1.05x bare -> p50 {fmt(headline['ratio_p50'], 'x', 2)}, "
        f"p95 {fmt(headline['ratio_p95'], 'x', 2)}"
    )
    loads = load.report()
    print(load.describe(info["cpus"]) + f"; total {time.monotonic() - started:.0f}s")
    path = write_results(
        "session_start",
        {
            "machine": info,
            "load": loads,
            "args": vars(args),
            "result": result,
            "start_steps": steps,
            "samples": samples,
            "quiet_waits": quiet,
            "wall_s": time.monotonic() - started,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
