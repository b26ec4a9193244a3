"""Concurrent text sessions: 20, then 50 at once, Switchboard against a bare livekit-agents
worker on the same LiveKit server, LLM and machine, in the same run.

    .venv/bin/python -m bench.concurrent_sessions [--sizes 20 50] [--max-tokens 64]
        [--llm simulated [--ttft-ms 300] [--tokens-per-s 50]]

Each session is a real rtc client in its own room: it joins (explicit dispatch, support
metadata), waits for the greeting, sends two chat messages on `lk.chat` and waits for each
reply on `lk.transcription`, then leaves. One session leads; as soon as its greeting is in, the
others start, `--stagger-ms` apart. (Why a lead: livekit-agents 1.8.9 estimates a job's load on
a worker with no active job as load_threshold / num_idle_processes, so an idle worker with
load_threshold 1.0 and 2 idle processes takes at most 2 jobs of a simultaneous burst and refuses
the rest, which a single-worker LiveKit then never dispatches: see the report. Both workers are
configured alike, so both would lose the same sessions to it; the lead keeps this bench about
the sessions.) Phases run one system at a time, the order alternating by size; before each phase the
bench waits until both workers are idle and the LLM has nothing to do, so one system's tail
(Switchboard's structured turns and summaries) never lands in the other's phase.

Both systems send the LLM the same prompt (the support agent type's instructions and
greeting), with the same sampling, set for both by this bench: temperature 0 and a small
`max_tokens`, so the same message gets the same reply and the comparison is about the worker,
not about how long a 135M model rambles. Session i sends the same two messages to both.

A third phase, `switchboard-same-llm-work`, runs the same Switchboard worker on a copy of the
support type that asks the LLM for what the bare worker asks: no turn fields, no summary. Its
ratio to bare is the platform's own cost (routing, config reads, records, metrics); the
`switchboard` ratio adds the LLM work of the per-turn fields and the summary.

Reported per phase: success rate, wall time, sessions/min (throughput), reply latency
p50/p95 (send -> whole reply), greeting latency, the LLM tokens the phase cost (llama.cpp
counters, or the simulator's with `--llm simulated`, including the work that continues after
the clients left), and memory per session:
the worker's process tree (main process, forkserver, job processes) sampled every second,
peak minus the idle baseline, over sessions; RSS as asked, PSS beside it (RSS counts pages
shared by forked job processes once per process).

Targets: throughput >= 0.95x bare, memory per session <= 1.1x bare. Each wait is bounded;
the whole run stays under ~15 minutes on 2 cores. Writes bench/results/concurrent_sessions-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    SAME_WORK_AGENT,
    SUPPORT_AGENT,
    BenchStack,
    CpuSnapshot,
    LoadWatch,
    MemorySampler,
    TimedClient,
    fmt,
    machine_info,
    print_table,
    process_roles,
    ratio,
    summary,
    tree_memory,
    write_results,
)

MB = 1024 * 1024
FIRST_MESSAGES = [
    "My login is not working since this morning.",
    "I was charged twice on my last invoice.",
    "How do I export my data to a spreadsheet?",
    "The mobile app crashes when I open settings.",
    "Can I add two more seats to my team plan?",
]
SECOND_MESSAGES = [
    "I already tried resetting my password.",
    "What should I do next?",
    "Thanks. Is there anything else I should check?",
    "It happens on every device I own.",
]
JOIN_TIMEOUT_S = 60.0
GREETING_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 180.0
QUIET_TIMEOUT_S = 120.0
BASELINE_S = 3.0
SAME_WORK = "switchboard-same-llm-work"
PHASE_WORKER = {"switchboard": "switchboard", "bare": "bare", SAME_WORK: "switchboard"}
PHASE_AGENT = {"switchboard": SUPPORT_AGENT, SAME_WORK: SAME_WORK_AGENT}
"""The agent type each Switchboard phase measures: a session served by another one fails, so
a routing change can no longer make a phase measure another type's LLM work unnoticed."""


def session_metadata(kind: str, size: int, index: int) -> dict[str, Any]:
    """What session `index` of a phase tells the worker (tests/worker/test_same_llm_work.py
    runs a session of the same-LLM-work phase with it)."""
    metadata: dict[str, Any] = {
        "purpose": "support",
        "user_id": f"bench-c{size}-{kind}-{index}",
        "user_details": {"tier": "free"},
    }
    if kind == SAME_WORK:
        metadata["agent_id"] = SAME_WORK_AGENT
    return metadata


async def hold_session(
    client: TimedClient,
    messages: Sequence[str],
    *,
    expect_agent: str | None = None,
    greeted: Callable[[], Awaitable[None]] | None = None,
    think_s: float = 0.0,
    before_leaving: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """One text session as a user holds it: join, the greeting, then each message on `lk.chat`
    and its whole reply, `think_s` between a reply's end and the next message; then leave.

    `expect_agent`: the session fails when Switchboard's agent says it is another type.
    `greeted` is awaited once the greeting is in, before the first message (a lead, a barrier);
    `before_leaving` after the last reply, before leaving (a barrier). Never raises (but for
    cancellation): the result says `ok` or the error."""
    result: dict[str, Any] = {"room": client.room_name, "ok": False, "replies": []}
    try:
        await client.join(JOIN_TIMEOUT_S)
        greeting = await client.wait_transcripts(1, GREETING_TIMEOUT_S)
        assert client.join_started_at is not None
        result["greeting_s"] = greeting.done_at - client.join_started_at
        if expect_agent is not None:
            result["agent_id"] = await client.served_by(GREETING_TIMEOUT_S)
            if result["agent_id"] != expect_agent:
                raise RuntimeError(f"served by {result['agent_id']}, not {expect_agent}")
        if greeted is not None:
            await greeted()
        for n, message in enumerate(messages):
            if n and think_s > 0:
                await asyncio.sleep(think_s)
            sent_at = time.time()
            first_byte, whole = await client.chat(message, REPLY_TIMEOUT_S)
            result["replies"].append(
                {
                    "sent_at": sent_at,
                    "first_byte_s": first_byte,
                    "whole_s": whole,
                    "chars": len(client.transcripts[-1].text),
                }
            )
        if before_leaving is not None:
            await before_leaving()
        result["ok"] = True
    except asyncio.CancelledError:
        result["error"] = "cancelled at the phase deadline"
        raise
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await client.leave()
        result["ended_at"] = time.time()
    return result


async def one_session(
    stack: BenchStack, kind: str, size: int, index: int, delay_s: float, lead: asyncio.Event
) -> dict[str, Any]:
    """Session 0 leads: the others start once its agent is running (see `run_phase`)."""
    if index > 0:
        try:
            await asyncio.wait_for(lead.wait(), GREETING_TIMEOUT_S)
        except TimeoutError:
            pass
        await asyncio.sleep(delay_s)
    client = stack.client(
        PHASE_WORKER[kind], session_metadata(kind, size, index), identity=f"bench-user-{index}"
    )

    async def greeted() -> None:
        if index == 0:
            lead.set()

    try:
        result = await hold_session(
            client,
            [
                FIRST_MESSAGES[index % len(FIRST_MESSAGES)],
                SECOND_MESSAGES[index % len(SECOND_MESSAGES)],
            ],
            expect_agent=PHASE_AGENT.get(kind),
            greeted=greeted,
        )
    finally:
        if index == 0:  # a lead that failed must not hold the others back
            lead.set()
    return {"index": index, **result}


async def run_phase(
    stack: BenchStack, kind: str, size: int, stagger_s: float, phase_timeout_s: float
) -> dict[str, Any]:
    worker = stack.workers[PHASE_WORKER[kind]]
    quiet_before = await asyncio.to_thread(stack.wait_quiet, QUIET_TIMEOUT_S, 2.0)
    baseline_samples = []
    for _ in range(int(BASELINE_S)):
        baseline_samples.append(await asyncio.to_thread(tree_memory, worker.process.pid))
        await asyncio.sleep(1.0)
    baseline_rss = statistics.median(m.rss for m in baseline_samples)
    baseline_pss = statistics.median(m.pss for m in baseline_samples)
    idle_processes = process_roles(worker.process.pid)
    counters_before = stack.llm_counters()
    _, log_offset = stack.llm_log_requests(0)
    sampler = MemorySampler({kind: worker.process.pid}).start()
    cpu_before = CpuSnapshot.take()
    started = time.time()
    lead = asyncio.Event()
    tasks = [
        asyncio.create_task(one_session(stack, kind, size, i, i * stagger_s, lead))
        for i in range(size)
    ]
    done, pending = await asyncio.wait(tasks, timeout=phase_timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    sessions = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    sessions += [
        {"index": -1, "ok": False, "error": "cancelled at the phase deadline", "replies": []}
    ] * len(pending)
    clients_done = time.time()
    quiet_after = await asyncio.to_thread(stack.wait_quiet, QUIET_TIMEOUT_S, 0.5)
    drained = time.time()
    cpu_after = CpuSnapshot.take()
    sampler.stop()
    counters_after = stack.llm_counters()
    llm_requests, _ = stack.llm_log_requests(log_offset)
    cpu_s = sampler.cpu_seconds(kind)

    ok = [s for s in sessions if s["ok"]]
    replies = [r for s in ok for r in s["replies"]]
    wall_s = clients_done - started
    peak = sampler.peak(kind)
    per_session_rss = (peak.rss - baseline_rss) / size / MB if peak else None
    per_session_pss = (peak.pss - baseline_pss) / size / MB if peak else None
    errors: dict[str, int] = {}
    for s in sessions:
        if not s["ok"]:
            key = str(s.get("error", "?"))[:120]
            errors[key] = errors.get(key, 0) + 1
    return {
        "kind": kind,
        "size": size,
        "ok": len(ok),
        "success_rate": len(ok) / size,
        "wall_s": wall_s,
        "drain_s": drained - started,
        "sessions_per_min": len(ok) / wall_s * 60 if wall_s > 0 else None,
        "replies_per_s": len(replies) / wall_s if wall_s > 0 else None,
        "reply_ms": summary([r["whole_s"] * 1000 for r in replies]),
        "reply_first_byte_ms": summary([r["first_byte_s"] * 1000 for r in replies]),
        "reply_chars": summary([float(r["chars"]) for r in replies]),
        "greeting_ms": summary([s["greeting_s"] * 1000 for s in ok if "greeting_s" in s]),
        "llm_tokens": {k: counters_after.get(k, 0) - v for k, v in counters_before.items()},
        "llm_requests": llm_requests,
        "worker_cpu_s": cpu_s,
        "worker_cpu_s_per_session": cpu_s / size,
        "memory": {
            "baseline_rss_mb": baseline_rss / MB,
            "baseline_pss_mb": baseline_pss / MB,
            "baseline_processes": baseline_samples[0].processes if baseline_samples else None,
            "peak_rss_mb": peak.rss / MB if peak else None,
            "peak_pss_mb": peak.pss / MB if peak else None,
            "peak_processes": peak.processes if peak else None,
            "per_session_rss_mb": per_session_rss,
            "per_session_pss_mb": per_session_pss,
            "idle_processes": idle_processes,
        },
        "errors": errors,
        "cores_used_by_bench": cpu_before.ours_cores(cpu_after),
        "cores_used_by_others": cpu_before.others_cores(cpu_after),
        "loadavg_after": os.getloadavg(),
        "quiet_before": quiet_before,
        "quiet_after": quiet_after,
        "sessions": sessions,
    }


def print_report(phases: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for p in phases:
        m = p["memory"]
        tokens = p["llm_tokens"]
        rows.append(
            [
                f"{p['kind']} x{p['size']}",
                f"{p['ok']}/{p['size']}",
                fmt(p["wall_s"], digits=1),
                fmt(p["drain_s"], digits=1),
                fmt(p["sessions_per_min"], digits=1),
                fmt(p["reply_ms"]["p50"], digits=0),
                fmt(p["reply_ms"]["p95"], digits=0),
                fmt(p["reply_first_byte_ms"]["p50"], digits=0),
                fmt(p["greeting_ms"]["p50"], digits=0),
                fmt(p["greeting_ms"]["p95"], digits=0),
                f"{tokens.get('prompt_tokens_total', 0):.0f}/{tokens.get('tokens_predicted_total', 0):.0f}",
                f"{p['llm_requests'] / p['size']:.1f}",
                fmt(p["worker_cpu_s_per_session"], digits=2),
                fmt(m["per_session_rss_mb"], digits=1),
                fmt(m["per_session_pss_mb"], digits=1),
                str(m["peak_processes"]),
                fmt(p["cores_used_by_others"], digits=2),
            ]
        )
    print_table(
        "concurrent text sessions (greeting + 2 replies each); ms unless noted",
        [
            "phase",
            "ok",
            "wall s",
            "drain s",
            "sess/min",
            "reply p50",
            "reply p95",
            "1st byte p50",
            "greet p50",
            "greet p95",
            "LLM tok in/out",
            "LLM req/sess",
            "CPU s/sess",
            "MB/sess RSS",
            "MB/sess PSS",
            "procs",
            "others' cores",
        ],
        rows,
    )
    ratios: dict[str, Any] = {}
    ratio_rows = []
    pairs = [
        (size, kind)
        for size in sorted({p["size"] for p in phases})
        for kind in ("switchboard", SAME_WORK)
    ]
    for size, kind in pairs:
        sb = next((p for p in phases if p["size"] == size and p["kind"] == kind), None)
        bare = next((p for p in phases if p["size"] == size and p["kind"] == "bare"), None)
        if not sb or not bare:
            continue
        r = {
            "throughput": ratio(sb["sessions_per_min"], bare["sessions_per_min"]),
            "success_rate": ratio(sb["success_rate"], bare["success_rate"]),
            "reply_p50": ratio(sb["reply_ms"]["p50"], bare["reply_ms"]["p50"]),
            "reply_p95": ratio(sb["reply_ms"]["p95"], bare["reply_ms"]["p95"]),
            "greeting_p50": ratio(sb["greeting_ms"]["p50"], bare["greeting_ms"]["p50"]),
            "memory_rss": ratio(
                sb["memory"]["per_session_rss_mb"], bare["memory"]["per_session_rss_mb"]
            ),
            "memory_pss": ratio(
                sb["memory"]["per_session_pss_mb"], bare["memory"]["per_session_pss_mb"]
            ),
            "llm_prompt_tokens": ratio(
                sb["llm_tokens"].get("prompt_tokens_total"),
                bare["llm_tokens"].get("prompt_tokens_total"),
            ),
            "llm_generated_tokens": ratio(
                sb["llm_tokens"].get("tokens_predicted_total"),
                bare["llm_tokens"].get("tokens_predicted_total"),
            ),
            "llm_requests": ratio(sb["llm_requests"], bare["llm_requests"]),
            "worker_cpu": ratio(sb["worker_cpu_s_per_session"], bare["worker_cpu_s_per_session"]),
        }
        ratios[f"{size} {kind}"] = r
        ratio_rows.append(
            [f"{size} {kind}"]
            + [
                fmt(r[k], "x", 2)
                for k in (
                    "throughput",
                    "success_rate",
                    "reply_p50",
                    "reply_p95",
                    "greeting_p50",
                    "memory_rss",
                    "memory_pss",
                    "llm_prompt_tokens",
                    "llm_generated_tokens",
                    "llm_requests",
                    "worker_cpu",
                )
            ]
        )
    print_table(
        "Switchboard / bare (targets: throughput >= 0.95x, memory <= 1.10x)",
        [
            "sessions, system",
            "throughput",
            "success",
            "reply p50",
            "reply p95",
            "greet p50",
            "mem RSS",
            "mem PSS",
            "LLM tok in",
            "LLM tok out",
            "LLM req",
            "worker CPU",
        ],
        ratio_rows,
    )
    idle_rows = []
    for kind in ("switchboard", "bare"):
        phase = next((p for p in phases if p["kind"] == kind), None)
        if phase is None:
            continue
        by_role: dict[str, list[float]] = {}
        for process in phase["memory"]["idle_processes"]:
            by_role.setdefault(process["role"], []).append(process["pss_mb"])
        for role, values in sorted(by_role.items()):
            idle_rows.append(
                [kind, role, str(len(values)), fmt(statistics.median(values), digits=1)]
            )
    print_table(
        "idle worker tree before the first phase (PSS MB per process)",
        ["worker", "role", "n", "PSS p50"],
        idle_rows,
    )
    for p in phases:
        if p["errors"]:
            print(f"  {p['kind']} x{p['size']} failures: {p['errors']}")
    return ratios


async def run(
    stack: BenchStack, sizes: list[int], stagger_s: float, phase_timeout_s: float
) -> list[dict[str, Any]]:
    phases = []
    for n, size in enumerate(sizes):
        order = (
            ("switchboard", "bare", SAME_WORK) if n % 2 == 0 else (SAME_WORK, "bare", "switchboard")
        )
        for kind in order:
            print(f"phase: {kind} x{size} ...", flush=True)
            phase = await run_phase(stack, kind, size, stagger_s, phase_timeout_s)
            print(
                f"  {phase['ok']}/{size} ok in {phase['wall_s']:.1f}s (drained {phase['drain_s']:.1f}s), "
                f"reply p50 {fmt(phase['reply_ms']['p50'], digits=0)} ms",
                flush=True,
            )
            phases.append(phase)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--max-tokens", type=int, default=64, help="reply cap for both systems")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling for both systems")
    parser.add_argument("--stagger-ms", type=float, default=20.0, help="gap between session starts")
    parser.add_argument("--phase-timeout", type=float, default=240.0, help="hard cap per phase (s)")
    parser.add_argument(
        "--no-llm-calls", action="store_true", help="skip timing single LLM calls first"
    )
    parser.add_argument(
        "--llm",
        choices=["local", "simulated"],
        default="local",
        help="the embedded llama.cpp model, or bench/simulated_llm.py (not the bottleneck)",
    )
    parser.add_argument("--ttft-ms", type=float, default=300.0, help="--llm simulated: TTFT")
    parser.add_argument(
        "--tokens-per-s", type=float, default=50.0, help="--llm simulated: token rate"
    )
    args = parser.parse_args()
    info = machine_info()
    started = time.monotonic()
    overrides = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    with (
        LoadWatch() as load,
        BenchStack(
            max_sessions=max(args.sizes) + 16,
            llm_overrides=overrides,
            llm=args.llm,
            simulated_ttft_ms=args.ttft_ms,
            simulated_tokens_per_s=args.tokens_per_s,
        ) as stack,
    ):
        print(f"stack up in {time.monotonic() - started:.1f}s; run dir {stack.run_dir}", flush=True)
        assert stack.endpoints and stack.endpoints.local_llm_url
        llm_calls = None
        if not args.no_llm_calls:
            from bench.llm_calls import measure

            llm_calls = asyncio.run(
                measure(
                    stack.endpoints.mongo_uri,
                    stack.database_name,
                    stack.endpoints.local_llm_url,
                    embedded=stack.endpoints.local_llm_embedded,
                )
            )
        phases = asyncio.run(run(stack, args.sizes, args.stagger_ms / 1000, args.phase_timeout))
    ratios = print_report(phases)
    loads = load.report()
    print("\n" + load.describe(info["cpus"]) + f"; total {time.monotonic() - started:.0f}s")
    path = write_results(
        "concurrent_sessions",
        {
            "machine": info,
            "load": loads,
            "args": vars(args),
            "ratios": ratios,
            "llm_calls": llm_calls,
            "phases": phases,
            "wall_s": time.monotonic() - started,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
