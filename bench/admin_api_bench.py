"""Admin API throughput and latency on loopback, against the real server (uvicorn) and FerretDB.

    .venv/bin/python bench/admin_api_bench.py [--rate 500] [--seconds 10] [--concurrency 16]

1. Config reads: GET /api/v1/agents/{id} sent OPEN LOOP at a fixed rate (default 500/s):
   each request leaves at its scheduled time whether or not earlier ones have returned, and
   its latency is counted from that scheduled time, so a stall is not hidden by the load
   generator slowing down with it ("coordinated omission"). Target: p99 <= 5 ms.
   Also with the read cache off (ADMIN_API_CONFIG_CACHE_TTL_S=0), at a lower rate: every read
   is then a FerretDB query (~2.5 ms of database CPU each), which caps reads near 400/s.
2. Token mints: POST /api/v1/token CLOSED LOOP with N concurrent connections for a fixed
   time; reports mints per second. Target: >= 1000/s. Measured with one pool (no routing,
   the default) and with worker pools configured (each mint routes the metadata first).

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams, in its own
process, so its cost stays small next to the server's. Both share this machine's CPUs.
Uses MONGO_URI / LIVEKIT_URL when set, otherwise starts the local devstack (no LLM).
Not part of the test suite.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pymongo import MongoClient  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

try:
    import uvloop
except ImportError:  # a slower client loop, same measurements
    uvloop = None  # type: ignore[assignment]

from devstack import DEFAULT_ROOT, Devstack, Endpoints  # noqa: E402
from devstack.services import reserve_port  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
CONFIG_PATH = "/api/v1/agents/support-agent-v1"
TOKEN_BODY = json.dumps(
    {
        "metadata": {
            "purpose": "support",
            "user_id": "bench-user",
            "user_details": {"tier": "premium"},
        }
    }
).encode()
WARMUP_REQUESTS = 300
now = time.perf_counter  # not loop.time(): uvloop's clock has millisecond resolution
console = Console(width=150)


# -- a lean HTTP/1.1 client ------------------------------------------------------------------


class Connection:
    """One keep-alive connection; requests are pre-encoded bytes, responses need Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def request_bytes(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- the two measurements --------------------------------------------------------------------


@dataclass
class Result:
    latencies_s: list[float]
    errors: int
    elapsed_s: float

    @property
    def per_second(self) -> float:
        return len(self.latencies_s) / self.elapsed_s

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
        return ordered[index] * 1000


async def warm_up(port: int, request: bytes) -> None:
    connection = await Connection.open(port)
    for _ in range(WARMUP_REQUESTS):
        assert await connection.send(request) == 200
    connection.close()


async def open_loop(
    port: int, request: bytes, rate: float, seconds: float, connections: int = 64
) -> Result:
    """Requests at fixed intervals on a pool of connections; latency from the scheduled time."""
    await warm_up(port, request)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    errors = 0
    start = now() + 0.05

    async def one(scheduled: float) -> None:
        nonlocal errors
        connection = await idle.get()
        try:
            status = await connection.send(request)
        finally:
            idle.put_nowait(connection)
        if status == 200:
            latencies.append(now() - scheduled)
        else:
            errors += 1

    tasks = []
    total = int(rate * seconds)
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = now() - start
    while not idle.empty():
        idle.get_nowait().close()
    return Result(latencies, errors, elapsed)


async def closed_loop(port: int, request: bytes, concurrency: int, seconds: float) -> Result:
    """`concurrency` connections each sending back to back for `seconds`."""
    await warm_up(port, request)
    latencies: list[float] = []
    errors = 0
    start = now()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal errors
        connection = await Connection.open(port)
        while now() < deadline:
            sent = now()
            if await connection.send(request) == 200:
                latencies.append(now() - sent)
            else:
                errors += 1
        connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(latencies, errors, now() - start)


# -- the server under test -------------------------------------------------------------------


@contextmanager
def admin_api_server(
    endpoints: Endpoints, database: str, extra_env: dict[str, str]
) -> Iterator[int]:
    port = reserve_port(0, "admin API", "ADMIN_API_PORT")
    env = (
        os.environ
        | endpoints.as_env()
        | {
            "MONGO_DB": database,
            "ADMIN_API_PORT": str(port),
            "ADMIN_API_BOOTSTRAP_KEY": ADMIN_KEY,
            "ADMIN_API_TOKEN_RATE_PER_S": "1000000",
            "ADMIN_API_TOKEN_BURST": "1000000",
        }
        | extra_env
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "admin_api"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_ready(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"admin API exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("admin API did not become ready")


def seed(endpoints: Endpoints, database: str) -> None:
    env = os.environ | endpoints.as_env() | {"MONGO_DB": database}
    subprocess.run(
        [sys.executable, "scripts/setup_agents.py"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


# -- report ----------------------------------------------------------------------------------


def row(table: Table, name: str, result: Result, target: str, met: bool) -> None:
    table.add_row(
        name,
        f"{len(result.latencies_s)}",
        f"{result.errors}",
        f"{result.per_second:,.0f}",
        f"{result.percentile_ms(0.50):.2f}",
        f"{result.percentile_ms(0.99):.2f}",
        f"{max(result.latencies_s) * 1000:.2f}",
        f"{target} {'[green]met[/green]' if met else '[red]missed[/red]'}",
    )


def server_stack() -> str:
    """Which event loop and HTTP parser uvicorn picks here ("auto" prefers uvloop/httptools)."""
    parts = []
    for module in ("uvloop", "httptools"):
        try:
            __import__(module)
            parts.append(module)
        except ImportError:
            parts.append(f"no {module}")
    return ", ".join(parts)


async def measure_all(endpoints: Endpoints, args: argparse.Namespace) -> None:
    database = f"bench_admin_{uuid.uuid4().hex[:8]}"
    seed(endpoints, database)
    table = Table(
        title=f"Admin API on loopback (1 uvicorn process; {server_stack()}; {os.cpu_count()} CPUs shared)"
    )
    for column in (
        "scenario",
        "requests",
        "errors",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "target",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "target") else "right")
    try:
        with admin_api_server(endpoints, database, {}) as port:
            baseline = await open_loop(
                port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", args.rate, args.seconds
            )
            row(table, f"GET /healthz, {args.rate:g}/s (harness floor)", baseline, "info", True)
            reads = await open_loop(
                port, request_bytes("GET", CONFIG_PATH), args.rate, args.seconds
            )
            row(
                table,
                f"GET config, {args.rate:g}/s open loop",
                reads,
                "p99 <= 5 ms",
                reads.percentile_ms(0.99) <= 5,
            )
            mints = await closed_loop(
                port,
                request_bytes("POST", "/api/v1/token", TOKEN_BODY),
                args.concurrency,
                args.seconds,
            )
            row(
                table,
                f"POST /token x{args.concurrency}",
                mints,
                ">= 1000/s",
                mints.per_second >= 1000,
            )
        uncached = {"ADMIN_API_CONFIG_CACHE_TTL_S": "0"}
        with admin_api_server(endpoints, database, uncached) as port:
            direct = await open_loop(
                port, request_bytes("GET", CONFIG_PATH), args.uncached_rate, args.seconds
            )
            row(table, f"GET config, cache off, {args.uncached_rate:g}/s", direct, "info", True)
        pools = {"ADMIN_API_AGENT_NAMES": json.dumps({"sales-agent-v1": "switchboard-sales"})}
        with admin_api_server(endpoints, database, pools) as port:
            routed = await closed_loop(
                port,
                request_bytes("POST", "/api/v1/token", TOKEN_BODY),
                args.concurrency,
                args.seconds,
            )
            row(table, f"POST /token x{args.concurrency}, pools", routed, "info", True)
    finally:
        client: MongoClient = MongoClient(endpoints.mongo_uri)
        client.drop_database(database)
        client.close()
    console.print(table)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    console.print(
        f"load average after the run (1, 5, 15 min): {load}; other work on the machine skews p99."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=500.0, help="config reads per second (open loop)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    parser.add_argument(
        "--uncached-rate",
        type=float,
        default=200.0,
        help="config reads per second with the read cache off",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="connections for the token mints"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as run_dir,
        Devstack(DEFAULT_ROOT, run_dir=Path(run_dir), llm_port=None) as endpoints,
    ):
        run = (
            uvloop.run if uvloop is not None else asyncio.run
        )  # a cheaper client loop when present
        run(measure_all(endpoints, args))


if __name__ == "__main__":
    main()
