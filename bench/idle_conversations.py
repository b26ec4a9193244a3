"""What idle conversations cost the channels process: ~0 beyond their records (the issue's
target), measured on 1,000 of them.

`python -m channels serve` runs as a process of its own (so its memory is its own) with one
HTTP chat API binding whose conversations close after `--ttl-s` idle (5 s, the least a
binding allows), on one Switchboard worker on the simulated model. First `--warmup`
conversations go through and close, so what a first conversation loads (LiveKit's FFI, the
routes, the database driver's pools) is in the baseline; then its RSS and PSS (the median of
five samples) are the baseline. Then `--conversations` conversations, `--concurrency` at a
time, each opened through the API and sent one message that is answered; then the bench
waits until every one has been idle past its TTL and the hub has closed its room
(`/healthz` `open_conversations` back to 0) and measures again; and once more after the
per-user rate windows (60 s by default) are over, when the hub has forgotten the users too.
It reports the growth in total and per conversation, the peak while they were open, and the
records the conversations left in MongoDB: where an idle conversation's cost is.

    .venv/bin/python -m bench.idle_conversations [--conversations 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from pymongo.asynchronous.database import AsyncDatabase  # noqa: E402

from agent_configs.channels import (  # noqa: E402
    CHANNEL_BINDINGS,
    CHANNEL_MESSAGES,
    ChannelBinding,
    ChannelKind,
    HttpChatSettings,
)
from agent_configs.database import open_client  # noqa: E402
from bench.harness import (  # noqa: E402
    SAME_WORK_AGENT,
    BenchStack,
    ChannelsProcess,
    LoadWatch,
    MemorySampler,
    fmt,
    machine_info,
    print_table,
    start_channels,
    summary,
    tree_memory,
    write_results,
)

BINDING = "bench-idle"
KEY_NAME = "bench-idle-backend"
MB = 1024 * 1024
CLOSE_TIMEOUT_S = 180.0


def process_status(pid: int) -> dict[str, int | None]:
    """What else a leak would show: anonymous memory, threads, open file descriptors."""
    found: dict[str, int | None] = {"rss_anon": None, "threads": None, "fds": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                found["rss_anon"] = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                found["threads"] = int(line.split()[1])
        found["fds"] = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        pass
    return found


async def snapshot(pid: int, samples: int = 5, every_s: float = 0.5) -> dict[str, Any]:
    """The median of a few samples of the process tree's memory (RSS, PSS), and its status."""
    taken = []
    for index in range(samples):
        if index:
            await asyncio.sleep(every_s)
        taken.append(await asyncio.to_thread(tree_memory, pid))
    return {
        "rss": statistics.median(m.rss for m in taken),
        "pss": statistics.median(m.pss for m in taken),
        "processes": taken[-1].processes,
        **process_status(pid),
    }


class Traffic:
    """Conversations through the HTTP chat API, a bounded number at a time, and the most
    open at once (`/healthz`)."""

    def __init__(self, channels: ChannelsProcess, token: str, concurrency: int) -> None:
        self.channels = channels
        self.concurrency = concurrency
        self.http = httpx.AsyncClient(
            base_url=channels.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            limits=httpx.Limits(max_connections=concurrency + 4),
        )
        self.peak_open = 0
        self.paired: list[tuple[int, int, int]] = []
        """(open conversations, RSS, PSS) taken together while a batch runs."""

    async def open_conversations(self) -> int:
        answer = await self.http.get("/healthz")
        answer.raise_for_status()
        count = int(answer.json()["open_conversations"])
        self.peak_open = max(self.peak_open, count)
        return count

    async def one(self, user: str) -> float:
        started = time.monotonic()
        base = f"/v1/channels/{BINDING}/conversations"
        opened = await self.http.post(base, json={"user_id": user})
        opened.raise_for_status()
        conversation = opened.json()["conversation_id"]
        answer = await self.http.post(f"{base}/{conversation}/messages", json={"text": "Hello!"})
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.status_code} {answer.text[:200]}")
        return time.monotonic() - started

    async def run(self, count: int, prefix: str) -> dict[str, Any]:
        """`count` conversations; their times and errors."""
        gate = asyncio.Semaphore(self.concurrency)
        times: list[float] = []
        errors: list[str] = []
        watching = asyncio.create_task(self._watch())

        async def guarded(index: int) -> None:
            async with gate:
                try:
                    times.append(await self.one(f"{prefix}-{index}"))
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                done = len(times) + len(errors)
                if done % 100 == 0:
                    print(f"  {prefix}: {done}/{count} ({len(errors)} failed)", flush=True)

        started = time.monotonic()
        try:
            await asyncio.gather(*(guarded(i) for i in range(count)))
        finally:
            watching.cancel()
        elapsed = time.monotonic() - started
        return {
            "count": count,
            "elapsed_s": elapsed,
            "per_s": count / elapsed if elapsed else None,
            "conversation_ms": summary([t * 1000 for t in times]),
            "errors": errors[:20],
            "failed": len(errors),
        }

    async def _watch(self) -> None:
        while True:
            try:
                count = await self.open_conversations()
            except httpx.HTTPError:
                count = None
            if count is not None:
                memory = await asyncio.to_thread(tree_memory, self.channels.pid)
                self.paired.append((count, memory.rss, memory.pss))
            await asyncio.sleep(0.5)

    async def wait_all_closed(self, timeout_s: float = CLOSE_TIMEOUT_S) -> float:
        """Seconds until the hub holds no open conversation (TimeoutError past the deadline)."""
        started = time.monotonic()
        while await self.open_conversations() > 0:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"conversations still open after {timeout_s:.0f} s")
            await asyncio.sleep(0.5)
        return time.monotonic() - started


async def records(database: AsyncDatabase) -> dict[str, Any]:
    """What the binding's conversations left in the database: documents and, where the
    server says, their bytes."""
    sessions = (
        await database["sessions"].find({"channel.binding_id": BINDING}, {"_id": 1}).to_list()
    )
    ids = [s["_id"] for s in sessions]
    counts = {
        CHANNEL_MESSAGES: await database[CHANNEL_MESSAGES].count_documents({"binding_id": BINDING}),
        "channel_conversations": await database["channel_conversations"].count_documents(
            {"binding_id": BINDING}
        ),
        "sessions": len(ids),
        "turns": await database["turns"].count_documents({"session_id": {"$in": ids}})
        if ids
        else 0,
        "outbox": await database["outbox"].count_documents({"subject": {"$regex": f"^{BINDING}/"}}),
    }
    sizes: dict[str, int | None] = {}
    for name in ("channel_messages", "channel_conversations", "sessions", "turns", "outbox"):
        try:
            stats = await database.command("collStats", name)
            sizes[name] = int(stats.get("size", 0))
        except Exception:
            sizes[name] = None
    return {"documents": counts, "collection_bytes": sizes}


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    from admin_api.auth import KeyRing, Role

    assert stack.endpoints is not None
    client = open_client(stack.endpoints.mongo_uri)
    database = client[stack.database_name]
    _, token = await KeyRing(database).create(KEY_NAME, Role.TOKEN)
    binding = ChannelBinding(
        binding_id=BINDING,
        kind=ChannelKind.HTTP,
        agent_id=args.agent,
        idle_ttl_s=args.ttl_s,
        http=HttpChatSettings(keys=[KEY_NAME]),
    )
    await database[CHANNEL_BINDINGS].replace_one({"_id": BINDING}, binding.document(), upsert=True)
    channels = await asyncio.to_thread(start_channels, stack)
    traffic: Traffic | None = None
    worker_pid = stack.workers["switchboard"].process.pid
    try:
        if await asyncio.to_thread(channels.wait_bindings, [BINDING]):
            status = await database["channel_status"].find_one({"_id": BINDING})
            raise RuntimeError(f"the binding did not start: {status}")
        traffic = Traffic(channels, token, args.concurrency)
        started_mem = await snapshot(channels.pid)
        print(f"warm-up: {args.warmup} conversations")
        warmup = await traffic.run(args.warmup, "warm")
        await traffic.wait_all_closed()
        await asyncio.to_thread(stack.wait_quiet, 120.0, 2.0)
        baseline = await snapshot(channels.pid)
        worker_baseline = await asyncio.to_thread(tree_memory, worker_pid)
        records_before = await records(database)
        print(
            f"baseline: RSS {baseline['rss'] / MB:.1f} MB, PSS {baseline['pss'] / MB:.1f} MB; "
            f"now {args.conversations} conversations, {args.concurrency} at a time"
        )
        traffic.peak_open = 0
        sampler = MemorySampler({"channels": channels.pid}, interval_s=0.5).start()
        batches: list[dict[str, Any]] = []
        done = 0
        try:
            for index in range(args.checkpoints):
                count = (args.conversations * (index + 1)) // args.checkpoints - done
                batch = await traffic.run(count, f"idle{index}")
                done += count
                print(
                    f"  {done}/{args.conversations}: {batch['count']} conversations in "
                    f"{batch['elapsed_s']:.0f} s ({fmt(batch['per_s'], '/s', 2)}), "
                    f"{batch['failed']} failed; waiting for them to close (TTL {args.ttl_s:g} s)"
                )
                last_message_at = time.monotonic()
                batch["closed_after_s"] = await traffic.wait_all_closed()
                batch["conversations_so_far"] = done
                batch["memory"] = await snapshot(channels.pid)
                print(
                    f"  all closed after {batch['closed_after_s']:.1f} s: RSS "
                    f"{batch['memory']['rss'] / MB:.1f} MB, PSS {batch['memory']['pss'] / MB:.1f} MB"
                )
                batches.append(batch)
        finally:
            sampler.stop()
        peak = sampler.peak("channels")
        per_open = per_open_conversation(traffic.paired)
        after_closed = batches[-1]["memory"]
        worker_after = await asyncio.to_thread(tree_memory, worker_pid)
        remaining = args.rate_window_s + 2.0 - (time.monotonic() - last_message_at)
        if remaining > 0:
            print(f"  all closed; {remaining:.0f} s more until the rate windows are over")
            await asyncio.sleep(remaining)
        after_windows = await snapshot(channels.pid)
        records_after = await records(database)
        return {
            "warmup": warmup,
            "batches": batches,
            "batch": _combined(batches),
            "closed_after_s": batches[-1]["closed_after_s"],
            "peak_open_conversations": traffic.peak_open,
            "per_open_conversation": per_open,
            "paired_samples": traffic.paired,
            "memory": {
                "at_start": started_mem,
                "baseline": baseline,
                "peak": None if peak is None else {"rss": peak.rss, "pss": peak.pss},
                "after_closed": after_closed,
                "after_rate_windows": after_windows,
            },
            "worker_memory": {
                "baseline": vars(worker_baseline),
                "after_closed": vars(worker_after),
            },
            "records": {"before": records_before, "after": records_after},
        }
    finally:
        if traffic is not None:
            await traffic.http.aclose()
        channels.stop()
        await client.close()


def _combined(batches: list[dict[str, Any]]) -> dict[str, Any]:
    count = sum(b["count"] for b in batches)
    elapsed = sum(b["elapsed_s"] for b in batches)
    return {
        "count": count,
        "elapsed_s": elapsed,
        "per_s": count / elapsed if elapsed else None,
        "failed": sum(b["failed"] for b in batches),
        "conversation_ms_p50_by_batch": [b["conversation_ms"]["p50"] for b in batches],
        "conversation_ms_p95_by_batch": [b["conversation_ms"]["p95"] for b in batches],
    }


def per_open_conversation(paired: list[tuple[int, int, int]]) -> dict[str, float | None]:
    """Bytes per conversation open at once: the least-squares slope of the process's memory
    over the number of open conversations, sampled together."""
    found: dict[str, float | None] = {"rss": None, "pss": None, "samples": float(len(paired))}
    counts = [float(c) for c, _, _ in paired]
    if len(set(counts)) < 2:
        return found
    for index, name in ((1, "rss"), (2, "pss")):
        fit = statistics.linear_regression(counts, [float(p[index]) for p in paired])
        found[name] = fit.slope
    return found


def slope(batches: list[dict[str, Any]], measure: str) -> float | None:
    """Bytes per conversation from the first checkpoint to the last: what each conversation
    leaves once the allocator's high-water mark of the first batch is paid."""
    if len(batches) < 2:
        return None
    first, last = batches[0], batches[-1]
    grown = last["memory"][measure] - first["memory"][measure]
    return grown / (last["conversations_so_far"] - first["conversations_so_far"])


def report(result: dict[str, Any], conversations: int) -> list[list[str]]:
    memory = result["memory"]
    base = memory["baseline"]
    rows = []
    # the peak is per conversation open at once, the rest per conversation run so far
    points = [("peak while open", memory["peak"], result["peak_open_conversations"] or 1)]
    points += [
        (f"{b['conversations_so_far']} closed (TTL)", b["memory"], b["conversations_so_far"])
        for b in result["batches"]
    ]
    points.append(("rate windows over", memory["after_rate_windows"], conversations))
    for label, now, count in points:
        if now is None:
            continue
        cells = [label]
        for measure in ("rss", "pss"):
            growth = now[measure] - base[measure]
            cells += [
                f"{now[measure] / MB:.1f}",
                f"{growth / MB:+.2f}",
                f"{growth / count:+.0f}",
            ]
        rows.append(cells)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--checkpoints",
        type=int,
        default=4,
        help="batches, each followed by all closed and a measurement: a leak grows at every one",
    )
    parser.add_argument("--ttl-s", type=float, default=5.0, help="the binding's idle_ttl_s")
    parser.add_argument(
        "--rate-window-s",
        type=float,
        default=60.0,
        help="the binding's rate window (the default's): the hub forgets a user after it",
    )
    parser.add_argument("--agent", default=SAME_WORK_AGENT)
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=200,
        help="the worker's WORKER_MAX_SESSIONS (rooms idle in their TTL hold a job each)",
    )
    args = parser.parse_args()
    info = machine_info()
    started = time.time()
    with (
        LoadWatch() as load,
        BenchStack(llm="simulated", bare=False, max_sessions=args.max_sessions) as stack,
    ):
        print(f"run directory: {stack.run_dir}")
        result = asyncio.run(measure(stack, args))
    base = result["memory"]["baseline"]
    print(
        f"\nchannels process baseline (after {args.warmup} warm-up conversations): "
        f"RSS {base['rss'] / MB:.1f} MB, PSS {base['pss'] / MB:.1f} MB "
        f"(at start, before any: RSS {result['memory']['at_start']['rss'] / MB:.1f} MB)"
    )
    print_table(
        f"memory of the channels process, {args.conversations} conversations",
        [
            "",
            "RSS MB",
            "growth MB",
            "B/conversation",
            "PSS MB",
            "growth MB",
            "B/conversation",
        ],
        report(result, args.conversations),
    )
    before = result["records"]["before"]["documents"]
    after = result["records"]["after"]["documents"]
    bytes_before = result["records"]["before"]["collection_bytes"]
    bytes_after = result["records"]["after"]["collection_bytes"]
    rows = []
    for name in after:
        grown = after[name] - before[name]
        size = (
            None
            if bytes_after.get(name) is None or bytes_before.get(name) is None
            else bytes_after[name] - bytes_before[name]
        )
        rows.append(
            [
                name,
                str(grown),
                fmt(grown / args.conversations, digits=2),
                "-" if size is None else f"{size / args.conversations:.0f}",
            ]
        )
    print_table(
        "what they left in MongoDB", ["collection", "documents", "per conversation", "B/conv"], rows
    )
    batch = result["batch"]
    for kind in ("rss", "pss"):
        per = slope(result["batches"], kind)
        if per is not None:
            print(
                f"{kind.upper()} from the first checkpoint to the last: {per:+.0f} B per "
                "conversation"
            )
    status = {k: (result["memory"]["after_rate_windows"][k], base[k]) for k in ("threads", "fds")}
    print(
        f"\n{batch['count']} conversations in {batch['elapsed_s']:.0f} s "
        f"({fmt(batch['per_s'], '/s', 2)}; open + answered p50 by batch "
        f"{', '.join(fmt(v, digits=0) for v in batch['conversation_ms_p50_by_batch'])} ms), "
        f"{batch['failed']} failed; at most "
        f"{result['peak_open_conversations']} open at once; all closed "
        f"{result['closed_after_s']:.1f} s after the last answer; threads {status['threads'][1]}"
        f" -> {status['threads'][0]}, open fds {status['fds'][1]} -> {status['fds'][0]}"
    )
    per_open = result["per_open_conversation"]
    if per_open["rss"] is not None and per_open["pss"] is not None:
        print(
            f"while open: {per_open['rss'] / MB:.1f} MB RSS, {per_open['pss'] / MB:.1f} MB PSS "
            f"per open conversation (slope over {per_open['samples']:.0f} paired samples)"
        )
    worker = result["worker_memory"]
    print(
        f"worker tree PSS (for scale): {worker['baseline']['pss'] / MB:.0f} MB before, "
        f"{worker['after_closed']['pss'] / MB:.0f} MB after"
    )
    print(load.describe(info["cpus"]))
    path = write_results(
        "idle_conversations",
        {
            "machine": info,
            "args": vars(args),
            "duration_s": time.time() - started,
            "load": load.report(),
            **result,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
