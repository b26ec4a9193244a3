"""Session end -> webhook receiver latency through the outbox and the dispatcher.

Starts the devstack's FerretDB (and LiveKit, which the devstack always brings), one
`python -m dispatcher` with its default settings, and a receiver on loopback that verifies
every Standard Webhooks signature. Then writes `session.ended` events to the outbox at a steady
rate (default 100 a minute, as 100 sessions ending a minute would: the worker's write is one
upsert, the same as here) and measures, per event, from its outbox write (`created_at`) to the
receiver having the verified request. Prints p50 / p95 / max and writes bench/results/.

    .venv/bin/python -m bench.webhook_delivery [--rate 100] [--events 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import uvicorn  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from standardwebhooks import Webhook  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from agent_configs import cloudevents, webhook_secrets  # noqa: E402
from agent_configs.cloudevents import OUTBOX, SUBSCRIPTIONS, EventType  # noqa: E402
from agent_configs.database import bson_now, open_client  # noqa: E402
from bench.harness import summary, write_results  # noqa: E402
from devstack import DEFAULT_ROOT, Devstack  # noqa: E402


class Receiver:
    """Records when each verified webhook-id first arrived (wall clock, like `created_at`)."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.arrived: dict[str, float] = {}
        self.rejected = 0
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/hook", self._handle, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        )
        threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True
        ).start()

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        at = time.time()
        try:
            self.webhook.verify(body, dict(request.headers))
        except Exception:
            self.rejected += 1
            return Response(status_code=400)
        self.arrived.setdefault(request.headers["webhook-id"], at)
        return Response(status_code=204)


def ended_event(session_id: str) -> dict:
    data = {
        "session_id": session_id,
        "agent_id": "support-agent-v1",
        "summary": "bench",
        "turn_count": 3,
        "transcript": [
            {"role": "user", "text": "hello " * 20},
            {"role": "assistant", "text": "hi " * 40},
        ],
    }
    return cloudevents.session_event(
        EventType.SESSION_ENDED, session_id, "support-agent-v1", "ended", cloudevents.LAST_SEQ, data
    )


async def run(rate_per_min: float, events: int, mongo_uri: str, key: str, workdir: Path) -> dict:
    secret = webhook_secrets.generate()
    receiver = Receiver(secret)
    database_name = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    client = open_client(mongo_uri)
    database = client[database_name]
    now = bson_now()
    await database[SUBSCRIPTIONS].insert_one(
        {
            "_id": f"sub_{uuid.uuid4().hex[:24]}",
            "url": f"http://127.0.0.1:{receiver.port}/hook",
            "description": "bench",
            "event_types": ["*"],
            "agent_ids": None,
            "status": "enabled",
            "secret": webhook_secrets.generated_secret(secret, key=key),
            "previous_secret": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
    )
    log_path = workdir / "dispatcher.log"
    env = os.environ | {
        "MONGO_URI": mongo_uri,
        "MONGO_DB": database_name,
        "WEBHOOK_ENCRYPTION_KEY": key,
        "DISPATCHER_METRICS_PORT": "0",
    }
    with log_path.open("wb") as log:
        dispatcher = subprocess.Popen(
            [sys.executable, "-m", "dispatcher"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "started" not in log_path.read_text(errors="replace"):
            if dispatcher.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the dispatcher did not start:\n{log_path.read_text()}")
            await asyncio.sleep(0.1)
        interval = 60.0 / rate_per_min
        created: dict[str, float] = {}
        started = time.monotonic()
        for n in range(events):
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
            event = ended_event(f"sess_bench_{n:05d}")
            created[event["_id"]] = event["created_at"].timestamp()
            await database[OUTBOX].update_one({"_id": event["_id"]}, {"$set": event}, upsert=True)
        deadline = time.monotonic() + 60
        while len(receiver.arrived) < events and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        latencies = [
            (receiver.arrived[i] - created[i]) * 1000 for i in created if i in receiver.arrived
        ]
        return {
            "rate_per_min": rate_per_min,
            "events": events,
            "delivered": len(latencies),
            "rejected_signatures": receiver.rejected,
            "latency_ms": summary(latencies),
            "dispatcher": "defaults (DISPATCHER_POLL_INTERVAL_S=0.25)",
        }
    finally:
        dispatcher.send_signal(signal.SIGTERM)
        try:
            dispatcher.wait(20)
        except subprocess.TimeoutExpired:
            dispatcher.kill()
        receiver.server.should_exit = True
        await client.drop_database(database_name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="session.ended events per minute")
    parser.add_argument("--events", type=int, default=100, help="how many events in all")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-webhooks-"))
    key = Fernet.generate_key().decode()
    print(f"logs in {workdir}")
    with Devstack(DEFAULT_ROOT, run_dir=workdir, llm_port=None) as endpoints:
        result = asyncio.run(run(args.rate, args.events, endpoints.mongo_uri, key, workdir))
    result["at"] = datetime.now(UTC).isoformat()
    latency = result["latency_ms"]
    print(
        f"{result['delivered']}/{result['events']} delivered at {args.rate:g}/min, "
        f"{result['rejected_signatures']} bad signatures"
    )
    print(
        f"session end -> receiver: p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms, max {latency['max']:.0f} ms"
    )
    print(f"results: {write_results('webhook_delivery', result)}")


if __name__ == "__main__":
    main()
