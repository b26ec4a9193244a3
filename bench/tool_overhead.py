"""What an http tool call adds to the tool's own latency (issue #12: at most 5 ms at p95).

A loopback HTTP server in its own process (so it does not share the event loop or the GIL
with the code measured) answers `GET /orders/{id}` after a fixed `--delay-ms` and says in a
header how long its handler took. Interleaved, N times each:

- `tool`: the http tool build_tools makes from a config (a URL template with an argument and
  a session value, a query argument, an env secret header checked by the egress policy, a
  result_pointer), called the way livekit calls a raw function tool (its argument
  preparation, then the tool object): JSON Schema check, URL filling, egress checks, the
  request, the pointer, the record and the metrics;
- `bare`: the same request with a plain reused httpx.AsyncClient, nothing else.

Overhead = the call's duration - the server handler's own time. Reported: p50/p95 of it for
both, and of tool - bare per pair. The budget is read as p95(tool) - p95(bare): what the tool
layer adds to the latency the tool's endpoint has for any client (the bare request pays the
loopback and both HTTP stacks too, which on a loaded 2-core machine is itself 3-8 ms at p95).
Nothing is mocked.

    .venv/bin/python -m bench.tool_overhead [--calls 500] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from typing import Any

from bench.harness import machine_info, percentile, print_table, summary, write_results

SERVER_TIME_HEADER = "X-Handler-Ms"
BUDGET_MS = 5.0


def serve(delay_s: float, ports: Any) -> None:
    """The tool's server (a separate process): replies after `delay_s`, timing its handler."""
    from aiohttp import web

    async def order(request: web.Request) -> web.Response:
        started = time.perf_counter()
        await asyncio.sleep(delay_s)
        body = {
            "order": {"id": request.match_info["order_id"], "status": "shipped"},
            "query": dict(request.query),
        }
        handler_ms = (time.perf_counter() - started) * 1000
        return web.json_response(body, headers={SERVER_TIME_HEADER: f"{handler_ms:.4f}"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/orders/{order_id}", order)
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


async def measure(url: str, calls: int, warmup: int) -> dict[str, list[float]]:
    import httpx
    from livekit.agents import llm
    from livekit.agents.llm import utils as llm_utils

    from agent_configs.egress import EgressPolicy
    from agent_configs.files import DEFAULTS_DIR, load_config_file
    from agent_configs.models import AgentConfig
    from worker.tools import ToolCallLog, ToolContext, build_tools
    from worker.tools import http as http_tools

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

    times = HandlerTimes()
    tool_client = http_tools.shared_client()
    tool_client.event_hooks["response"].append(times.on_response)
    bare_client = httpx.AsyncClient(trust_env=False, event_hooks={"response": [times.on_response]})

    async def tool_call(n: int) -> float:
        arguments = json.dumps({"order_id": str(n), "verbose": True})
        started = time.perf_counter()
        args, kwargs = llm_utils.prepare_function_arguments(fnc=tool, json_arguments=arguments)
        result = await tool(*args, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        assert json.loads(result) == {"id": str(n), "status": "shipped"}, result
        return elapsed_ms

    async def bare_call(n: int) -> float:
        started = time.perf_counter()
        response = await bare_client.get(
            f"{url}/orders/{n}",
            params={"session": "bench", "verbose": "true"},
            headers={"Authorization": "bench-token"},
        )
        json.loads(response.content)
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
                tool_ms, tool_server_ms = await tool_call(n), times.last_ms
                bare_ms, bare_server_ms = await bare_call(n), times.last_ms
            else:
                bare_ms, bare_server_ms = await bare_call(n), times.last_ms
                tool_ms, tool_server_ms = await tool_call(n), times.last_ms
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()

    spawn = multiprocessing.get_context("spawn")
    ports = spawn.Queue()
    server = spawn.Process(target=serve, args=(args.delay_ms / 1000, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        overhead = asyncio.run(measure(f"http://127.0.0.1:{port}", args.calls, args.warmup))
    finally:
        server.terminate()
        server.join(timeout=5)

    rows = []
    for name, label in (
        ("tool", "tool call - server time"),
        ("bare", "bare httpx - server time"),
        ("tool_minus_bare", "tool - bare (our layer)"),
        ("server_ms", "server handler time"),
    ):
        values = overhead[name]
        rows.append(
            [
                label,
                f"{percentile(values, 0.5):.2f}",
                f"{percentile(values, 0.95):.2f}",
                f"{max(values):.2f}",
            ]
        )
    print_table(
        f"http tool overhead, {args.calls} calls, server delay {args.delay_ms:g} ms (ms)",
        ["what", "p50", "p95", "max"],
        rows,
    )
    tool_p95 = percentile(overhead["tool"], 0.95) or 0.0
    bare_p95 = percentile(overhead["bare"], 0.95) or 0.0
    added = tool_p95 - bare_p95
    print(
        f"\np95: the tool adds {added:.2f} ms to the round trip a bare client sees: "
        f"{'within' if added <= BUDGET_MS else 'OVER'} the {BUDGET_MS:g} ms budget (issue #12)"
    )
    print(
        f"p95 over the server handler's own time: {tool_p95:.2f} ms, of which a bare httpx request "
        f"already takes {bare_p95:.2f} ms (loopback, HTTP parsing on both sides, scheduling)"
    )
    path = write_results(
        "tool_overhead",
        {
            "machine": machine_info(),
            "calls": args.calls,
            "delay_ms": args.delay_ms,
            "overhead_ms": {name: summary(values) for name, values in overhead.items()},
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
