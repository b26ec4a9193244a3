"""What an http tool call adds to the tool's own latency (issue #18: at most 5 ms at p95,
the first call of a session included).

A loopback HTTP server in its own process (so it does not share the event loop or the GIL
with the code measured) answers `GET /orders/{id}` after a fixed `--delay-ms`, says in a
header how long its handler took and keeps that time per order id (`GET /handler-ms`).
Overhead = the call's duration - the server handler's own time. Two parts, one run:

**First calls** (`--sessions` fresh processes per kind, run one at a time, kinds interleaved).
A session runs in a new job process forked from livekit's forkserver, which has imported
worker.server and the other `preload_modules` of worker/server.py; the children here come from
a forkserver that preloaded the same list, with `PROMETHEUS_MULTIPROC_DIR` set as in the worker.
Each child makes one first request, timed, then `--warm-calls` more:

- `tool`: builds the session's tools (build_tools, untimed: that is session start) and counts
  the session started, as the worker does, then calls the http tool the way livekit calls a raw
  function tool;
- `bare fresh client`: `httpx.AsyncClient(trust_env=False)` built inside the timer, then the
  same GET (what a hand-written tool that makes its client per session pays);
- `bare prebuilt client`: the client built before the timer, so only the first connection is
  in it.

**Warm calls** (`--calls`, one process, interleaved pairs): the tool against the same request
with a plain reused httpx.AsyncClient, nothing else.

The budget is read as p95(tool) - p95(bare warm): what the tool layer adds to the latency the
tool's endpoint has for any client that keeps its connection (the bare request pays the
loopback and both HTTP stacks too, which on a loaded 2-core machine is itself 3-8 ms at p95).
The first-call table gives the other baselines too. Nothing is mocked.

    .venv/bin/python -m bench.tool_overhead [--calls 500] [--sessions 40] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from typing import Any

from bench.harness import machine_info, percentile, print_table, summary, write_results

SERVER_TIME_HEADER = "X-Handler-Ms"
BUDGET_MS = 5.0
PRELOAD_MODULES = [
    "worker.server",
    "openai.lib.streaming.chat",
    "anyio._backends._asyncio",
    "jiter",
]
"""worker/server.py's `preload_modules`: what every job process has imported before its job."""
FIRST_KINDS = ("tool", "bare_fresh", "bare_prebuilt")


def serve(delay_s: float, ports: Any) -> None:
    """The tool's server (a separate process): replies after `delay_s`, timing its handler."""
    from aiohttp import web

    handler_ms: dict[str, float] = {}

    async def order(request: web.Request) -> web.Response:
        started = time.perf_counter()
        await asyncio.sleep(delay_s)
        order_id = request.match_info["order_id"]
        body = {"order": {"id": order_id, "status": "shipped"}, "query": dict(request.query)}
        elapsed_ms = (time.perf_counter() - started) * 1000
        handler_ms[order_id] = elapsed_ms
        return web.json_response(body, headers={SERVER_TIME_HEADER: f"{elapsed_ms:.4f}"})

    async def handler_times(request: web.Request) -> web.Response:
        times = dict(handler_ms)
        handler_ms.clear()
        return web.json_response(times)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/orders/{order_id}", order)
        app.router.add_get("/handler-ms", handler_times)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


class HandlerTimes:
    """The server's own time per request, read from its response header by an httpx hook."""

    def __init__(self) -> None:
        self.last_ms = 0.0

    async def on_response(self, response: Any) -> None:
        self.last_ms = float(response.headers.get(SERVER_TIME_HEADER, "nan"))


async def session_tool(url: str) -> tuple[Any, Any]:
    """The http tool a session's build_tools makes from a config (a URL template with an
    argument and a session value, a query argument, an env secret header checked by the egress
    policy, a result_pointer), and the session's call log."""
    from livekit.agents import llm

    from agent_configs.egress import EgressPolicy
    from agent_configs.files import DEFAULTS_DIR, load_config_file
    from agent_configs.models import AgentConfig
    from worker.tools import ToolCallLog, ToolContext, build_tools

    os.environ["BENCH_ORDERS_TOKEN"] = "bench-token"
    support = load_config_file(DEFAULTS_DIR / "support.yaml")
    assert isinstance(support, AgentConfig)
    spec = {
        "kind": "http",
        "name": "lookup_order",
        "description": "Look up an order.",
        "url": url + "/orders/{order_id}?session={session_id}",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
            "required": ["order_id"],
        },
        "headers": {"Authorization": {"env": "BENCH_ORDERS_TOKEN"}},
        "result_pointer": "/order",
    }
    config = AgentConfig.model_validate(support.definition() | {"tools": [spec]})
    policy = EgressPolicy(
        _env_file=None, secrets={"BENCH_ORDERS_TOKEN": ["127.0.0.1"]}, hosts=["loopback"]
    )
    log = ToolCallLog()
    context = ToolContext(
        session_id="bench",
        agent_id=config.agent_id,
        user_id=None,
        room="bench",
        egress=policy,
        log=log,
        controls=None,  # type: ignore[arg-type]  # the bench calls tools outside a session
        say=None,
    )
    (tool,) = await build_tools(config, context)
    assert isinstance(tool, llm.RawFunctionTool)
    return tool, log


async def call_tool(tool: Any, order_id: str) -> float:
    """One call as livekit makes it (its argument preparation, then the tool object), in ms."""
    from livekit.agents.llm import utils as llm_utils

    arguments = json.dumps({"order_id": order_id, "verbose": True})
    started = time.perf_counter()
    args, kwargs = llm_utils.prepare_function_arguments(fnc=tool, json_arguments=arguments)
    result = await tool(*args, **kwargs)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert json.loads(result) == {"id": order_id, "status": "shipped"}, result
    return elapsed_ms


async def bare_get(client: Any, url: str, order_id: str) -> None:
    response = await client.get(
        f"{url}/orders/{order_id}",
        params={"session": "bench", "verbose": "true"},
        headers={"Authorization": "bench-token"},
    )
    json.loads(response.content)


def first_call_child(kind: str, url: str, tag: str, warm_calls: int, results: Any) -> None:
    """One fresh job process: the first request of `kind`, then `warm_calls` more (ms, by
    order id, for the parent to subtract the server's time)."""
    preloaded = all(name in sys.modules for name in PRELOAD_MODULES)
    results.put(asyncio.run(_first_calls(kind, url, tag, warm_calls)) | {"preloaded": preloaded})


async def _first_calls(kind: str, url: str, tag: str, warm_calls: int) -> dict[str, Any]:
    import httpx

    ids = [f"{tag}-{n}" for n in range(1 + warm_calls)]
    elapsed: list[float] = []
    if kind == "tool":
        from worker import metrics
        from worker.tools import http as http_tools

        tool, log = await session_tool(url)
        # What the session's start did before any turn (worker/server.py _record_start): with
        # it, the process's counter file exists, as it does when a session's first call comes.
        metrics.SESSIONS_STARTED.labels("bench", "bench").inc()
        for order_id in ids:
            elapsed.append(await call_tool(tool, order_id))
        assert all(record.ok for record in log.drain())
        await http_tools.close_shared_client()
        return {"kind": kind, "ids": ids, "elapsed_ms": elapsed}
    client: httpx.AsyncClient | None = None
    if kind == "bare_prebuilt":
        client = httpx.AsyncClient(trust_env=False)
    started = time.perf_counter()
    if client is None:
        client = httpx.AsyncClient(trust_env=False)
    await bare_get(client, url, ids[0])
    elapsed.append((time.perf_counter() - started) * 1000)
    for order_id in ids[1:]:
        started = time.perf_counter()
        await bare_get(client, url, order_id)
        elapsed.append((time.perf_counter() - started) * 1000)
    await client.aclose()
    return {"kind": kind, "ids": ids, "elapsed_ms": elapsed}


def measure_first_calls(url: str, sessions: int, warm_calls: int) -> dict[str, list[float]]:
    """`sessions` fresh processes per kind from a forkserver that preloaded PRELOAD_MODULES,
    one at a time, the kinds' order rotated each round."""
    import httpx

    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD_MODULES)
    results = forkserver.Queue()
    children: list[dict[str, Any]] = []
    for round_ in range(sessions):
        shift = round_ % len(FIRST_KINDS)
        for kind in FIRST_KINDS[shift:] + FIRST_KINDS[:shift]:
            process = forkserver.Process(
                target=first_call_child, args=(kind, url, f"{kind}{round_}", warm_calls, results)
            )
            process.start()
            children.append(results.get(timeout=60))
            process.join(timeout=30)
            if process.exitcode != 0:
                raise RuntimeError(f"a {kind} child ended with {process.exitcode}")
    assert all(child["preloaded"] for child in children), "the forkserver did not preload"
    with httpx.Client(trust_env=False) as client:
        handler_ms: dict[str, float] = client.get(f"{url}/handler-ms").json()
    overhead: dict[str, list[float]] = {
        f"{kind}_{which}": [] for kind in FIRST_KINDS for which in ("first", "warm")
    }
    for child in children:
        spent = [
            elapsed - handler_ms[order_id]
            for order_id, elapsed in zip(child["ids"], child["elapsed_ms"], strict=True)
        ]
        overhead[f"{child['kind']}_first"].append(spent[0])
        overhead[f"{child['kind']}_warm"].extend(spent[1:])
    overhead["bare_warm"] = overhead.pop("bare_fresh_warm") + overhead.pop("bare_prebuilt_warm")
    return overhead


async def measure(url: str, calls: int, warmup: int) -> dict[str, list[float]]:
    import httpx

    from worker.tools import http as http_tools

    tool, log = await session_tool(url)
    times = HandlerTimes()
    tool_client = http_tools.shared_client()
    tool_client.event_hooks["response"].append(times.on_response)
    bare_client = httpx.AsyncClient(trust_env=False, event_hooks={"response": [times.on_response]})

    async def bare_call(n: int) -> float:
        started = time.perf_counter()
        await bare_get(bare_client, url, str(n))
        return (time.perf_counter() - started) * 1000

    overhead: dict[str, list[float]] = {
        "tool": [],
        "bare": [],
        "tool_minus_bare": [],
        "server_ms": [],
    }
    try:
        for n in range(warmup + calls):
            if n % 2:  # alternate which goes first, so neither always follows the other
                tool_ms, tool_server_ms = await call_tool(tool, str(n)), times.last_ms
                bare_ms, bare_server_ms = await bare_call(n), times.last_ms
            else:
                bare_ms, bare_server_ms = await bare_call(n), times.last_ms
                tool_ms, tool_server_ms = await call_tool(tool, str(n)), times.last_ms
            if n < warmup:
                continue
            overhead["tool"].append(tool_ms - tool_server_ms)
            overhead["bare"].append(bare_ms - bare_server_ms)
            overhead["tool_minus_bare"].append(
                (tool_ms - tool_server_ms) - (bare_ms - bare_server_ms)
            )
            overhead["server_ms"].append(tool_server_ms)
        records = log.drain()
        assert len(records) == warmup + calls and all(r.ok for r in records)
    finally:
        await bare_client.aclose()
        await http_tools.close_shared_client()
    return overhead


def stats_row(label: str, values: list[float]) -> list[str]:
    return [
        label,
        str(len(values)),
        f"{percentile(values, 0.5):.2f}",
        f"{percentile(values, 0.95):.2f}",
        f"{max(values):.2f}",
    ]


def added(ours: list[float], baseline: list[float], share: float) -> float:
    return (percentile(ours, share) or 0.0) - (percentile(baseline, share) or 0.0)


def verdict(value: float) -> str:
    return "within" if value <= BUDGET_MS else "OVER"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="warm calls, one process")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--sessions", type=int, default=40, help="fresh processes per kind for the first call"
    )
    parser.add_argument(
        "--warm-calls", type=int, default=5, help="calls after the first in each fresh process"
    )
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()

    # Job processes run prometheus_client in multiprocess mode (worker/__main__.py): a call's
    # metrics go to files. Set before anything imports prometheus_client, and before the
    # forkserver starts, so every process measured here does the same.
    metrics_dir = tempfile.TemporaryDirectory(prefix="switchboard-bench-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name

    spawn = multiprocessing.get_context("spawn")
    ports = spawn.Queue()
    server = spawn.Process(target=serve, args=(args.delay_ms / 1000, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        url = f"http://127.0.0.1:{port}"
        first = measure_first_calls(url, args.sessions, args.warm_calls)
        overhead = asyncio.run(measure(url, args.calls, args.warmup))
    finally:
        server.terminate()
        server.join(timeout=5)
        metrics_dir.cleanup()

    print_table(
        f"first call of a session: {args.sessions} fresh job processes per kind, server delay "
        f"{args.delay_ms:g} ms (call - server handler time, ms)",
        ["what", "n", "p50", "p95", "max"],
        [
            stats_row("tool, first call", first["tool_first"]),
            stats_row("bare, first request, client built in it", first["bare_fresh_first"]),
            stats_row("bare, first request, client built before", first["bare_prebuilt_first"]),
            stats_row(f"tool, calls 2-{args.warm_calls + 1}", first["tool_warm"]),
            stats_row(f"bare, requests 2-{args.warm_calls + 1} (warm)", first["bare_warm"]),
        ],
    )
    print_table(
        f"warm calls in one process, {args.calls} interleaved pairs (ms)",
        ["what", "n", "p50", "p95", "max"],
        [
            stats_row("tool call - server time", overhead["tool"]),
            stats_row("bare httpx - server time", overhead["bare"]),
            stats_row("tool - bare (our layer), per pair", overhead["tool_minus_bare"]),
            stats_row("server handler time", overhead["server_ms"]),
        ],
    )
    comparisons = {
        "first_vs_bare_warm": added(first["tool_first"], first["bare_warm"], 0.95),
        "first_vs_bare_fresh_client_first": added(
            first["tool_first"], first["bare_fresh_first"], 0.95
        ),
        "first_vs_bare_prebuilt_client_first": added(
            first["tool_first"], first["bare_prebuilt_first"], 0.95
        ),
        "warm_vs_bare_warm": added(overhead["tool"], overhead["bare"], 0.95),
    }
    p50 = {
        "first_vs_bare_warm": added(first["tool_first"], first["bare_warm"], 0.5),
        "first_vs_bare_fresh_client_first": added(
            first["tool_first"], first["bare_fresh_first"], 0.5
        ),
        "first_vs_bare_prebuilt_client_first": added(
            first["tool_first"], first["bare_prebuilt_first"], 0.5
        ),
        "warm_vs_bare_warm": added(overhead["tool"], overhead["bare"], 0.5),
    }
    print(
        "\nwhat the tool adds (p50 / p95 of the tool's minus the same percentile of the baseline):"
    )
    for name, label in (
        ("first_vs_bare_warm", "first call vs a bare warm request (the budget)"),
        ("first_vs_bare_fresh_client_first", "first call vs a bare first request, fresh client"),
        ("first_vs_bare_prebuilt_client_first", "first call vs a bare first request, built client"),
        ("warm_vs_bare_warm", "warm call vs a bare warm request (the budget)"),
    ):
        budget = (
            f"  {verdict(comparisons[name])} the {BUDGET_MS:g} ms budget"
            if "budget" in label
            else ""
        )
        print(f"  {label}: {p50[name]:+.2f} / {comparisons[name]:+.2f} ms{budget}")
    path = write_results(
        "tool_overhead",
        {
            "machine": machine_info(),
            "calls": args.calls,
            "sessions": args.sessions,
            "warm_calls": args.warm_calls,
            "delay_ms": args.delay_ms,
            "overhead_ms": {name: summary(values) for name, values in overhead.items()},
            "first_call_overhead_ms": {name: summary(values) for name, values in first.items()},
            "added_ms": {"p50": p50, "p95": comparisons},
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
