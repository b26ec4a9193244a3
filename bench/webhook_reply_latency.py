"""Does a hanging webhook receiver slow a conversation? Reply latency with one vs. none.

One real worker (`python -m worker start`), one `python -m dispatcher` (defaults: 10 s timeout,
backoff from 5 s) and a receiver on loopback that accepts every connection and never answers.
Two agent types with the same config: `support-agent-v1`, whose events a subscription sends to
the hanging receiver, and a copy no subscription matches (`agent_ids` filter), so the two arms
share the run, the worker, the dispatcher and the machine. Sessions alternate between the arms;
each is a greeting, `--replies` messages on `lk.chat` (timed from the send to the reply's first
byte and to its end) and the user ending it (`switchboard.end`, so `session.ended` is written).

The model is the scripted OpenAI-compatible endpoint (tests/worker/scripted_llm.py), instant, so
what is measured is the worker's own cost, not the CPU model's.

    .venv/bin/python -m bench.webhook_reply_latency [--sessions 10] [--replies 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from agent_configs import webhook_secrets  # noqa: E402
from agent_configs.cloudevents import DELIVERIES, SUBSCRIPTIONS  # noqa: E402
from agent_configs.database import bson_now, open_client  # noqa: E402
from agent_configs.models import LLMSpec  # noqa: E402
from agent_configs.routing.rules import RulesStore  # noqa: E402
from agent_configs.store import ConfigStore  # noqa: E402
from bench.harness import (  # noqa: E402
    SUPPORT_AGENT,
    TimedClient,
    _start_worker,
    _wait_registered,
    allow_explicitly,
    fmt,
    print_table,
    ratio,
    seed_database,
    summary,
    write_results,
)
from devstack import DEFAULT_ROOT, Devstack, Endpoints  # noqa: E402
from tests.worker.scripted_llm import ScriptedLLM  # noqa: E402

UNSUBSCRIBED_AGENT = "support-unsubscribed"
MESSAGES = ["My order has not arrived", "It was order 1234", "Thanks, that helps"]


class HangingReceiver:
    """Accepts connections, reads what comes, never answers: a receiver that is hung."""

    def __init__(self) -> None:
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(65536):
            pass  # the sender gives up (its timeout); nothing is ever written back

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()


async def prepare_database(
    mongo_uri: str, database_name: str, llm_url: str, key: str, hook_url: str
) -> None:
    """Built-in types on the scripted model, the unsubscribed copy, and the hanging subscription."""
    await seed_database(mongo_uri, database_name)
    client = open_client(mongo_uri)
    try:
        database = client[database_name]
        store = ConfigStore(database)
        scripted = LLMSpec(provider="local", model="scripted", base_url=llm_url)
        for config in (await store.list_agents()).items:
            await store.update(
                config.model_copy(update={"llm": scripted}), expected_version=config.version
            )
        support = await store.get(SUPPORT_AGENT)
        await store.create(
            support.model_copy(
                update={"agent_id": UNSUBSCRIBED_AGENT, "purposes": [], "intents": []}
            )
        )
        await allow_explicitly(RulesStore(database), UNSUBSCRIBED_AGENT)
        now = bson_now()
        await database[SUBSCRIPTIONS].insert_one(
            {
                "_id": f"sub_{uuid.uuid4().hex[:24]}",
                "url": hook_url,
                "description": "hangs",
                "event_types": ["*"],
                "agent_ids": [SUPPORT_AGENT],
                "status": "enabled",
                "secret": webhook_secrets.generated_secret(webhook_secrets.generate(), key=key),
                "previous_secret": None,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
        )
    finally:
        await client.close()


async def one_session(
    endpoints: Endpoints, agent_name: str, agent_id: str, replies: int
) -> tuple[list[float], list[float]]:
    """(first-byte seconds, whole-reply seconds) of each reply in one session."""
    client = TimedClient(
        endpoints,
        agent_name,
        {"agent_id": agent_id, "user_id": f"u-{uuid.uuid4().hex[:6]}"},
        "bench-user",
    )
    first, whole = [], []
    try:
        await client.join()
        await client.wait_transcripts(1, 60)  # the greeting
        for text in MESSAGES[:replies]:
            to_first, to_end = await client.chat(text, 60)
            first.append(to_first)
            whole.append(to_end)
        await client.room.local_participant.publish_data(
            json.dumps({}), reliable=True, topic="switchboard.end"
        )
    finally:
        await client.leave()
    return first, whole


async def run(endpoints: Endpoints, workdir: Path, sessions: int, replies: int) -> dict:
    key = Fernet.generate_key().decode()
    receiver = HangingReceiver()
    await receiver.start()
    llm = ScriptedLLM()
    await llm.start()
    database_name = f"bench_hook_latency_{uuid.uuid4().hex[:8]}"
    await prepare_database(
        endpoints.mongo_uri, database_name, llm.url, key, f"http://127.0.0.1:{receiver.port}/hook"
    )
    agent_name = f"bench-hook-{uuid.uuid4().hex[:6]}"
    common = (
        os.environ | endpoints.as_env() | {"MONGO_DB": database_name, "WEBHOOK_ENCRYPTION_KEY": key}
    )
    worker = _start_worker(
        "switchboard",
        [sys.executable, "-m", "worker", "start"],
        common
        | {
            "AGENT_NAME": agent_name,
            "PROMETHEUS_PORT": "0",
            "WORKER_MAX_SESSIONS": "32",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            "SPOOL_DIR": str(workdir / "spool"),
        },
        workdir / "worker.log",
        agent_name,
    )
    dispatcher_log = workdir / "dispatcher.log"
    with dispatcher_log.open("wb") as log:
        dispatcher = subprocess.Popen(
            [sys.executable, "-m", "dispatcher"],
            cwd=REPO_ROOT,
            env=common | {"DISPATCHER_METRICS_PORT": "0"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = open_client(endpoints.mongo_uri)
    try:
        await asyncio.to_thread(_wait_registered, worker)
        arms = {"hanging receiver": SUPPORT_AGENT, "no subscription": UNSUBSCRIBED_AGENT}
        first: dict[str, list[float]] = {arm: [] for arm in arms}
        whole: dict[str, list[float]] = {arm: [] for arm in arms}
        for n in range(sessions):
            # Alternate which arm goes first each round: neither always follows the other.
            order = list(arms) if n % 2 == 0 else list(reversed(arms))
            for arm in order:
                to_first, to_end = await one_session(endpoints, agent_name, arms[arm], replies)
                first[arm] += [s * 1000 for s in to_first]
                whole[arm] += [s * 1000 for s in to_end]
        deliveries = client[database_name][DELIVERIES]
        pending = await deliveries.count_documents({"status": "pending"})
        attempted = await deliveries.count_documents({"attempts": {"$gte": 1}})
        sessions_by_agent = {
            agent: await client[database_name]["sessions"].count_documents({"agent_id": agent})
            for agent in arms.values()
        }
        hung, unsubscribed = (arms["hanging receiver"], arms["no subscription"])
        result: dict[str, Any] = {
            "sessions_per_arm": sessions,
            "replies_per_session": replies,
            "model": "scripted (instant)",
            "first_text_ms": {arm: summary(values) for arm, values in first.items()},
            "whole_reply_ms": {arm: summary(values) for arm, values in whole.items()},
            "sessions_recorded": sessions_by_agent,
            "receiver_connections_held": receiver.connections,
            "deliveries_pending_at_end": pending,
            "deliveries_attempted": attempted,
            "dispatcher": "defaults (DISPATCHER_TIMEOUT_S=10)",
        }
        result["p95_ratio_first_text"] = ratio(
            result["first_text_ms"]["hanging receiver"]["p95"],
            result["first_text_ms"]["no subscription"]["p95"],
        )
        assert sessions_by_agent[hung] == sessions_by_agent[unsubscribed] == sessions, (
            sessions_by_agent
        )
        return result
    finally:
        dispatcher.send_signal(signal.SIGTERM)
        try:
            dispatcher.wait(30)
        except subprocess.TimeoutExpired:
            dispatcher.kill()
        await asyncio.to_thread(worker.stop)
        await client.drop_database(database_name)
        await client.close()
        await llm.stop()
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=10, help="sessions per arm")
    parser.add_argument(
        "--replies",
        type=int,
        default=3,
        choices=range(1, len(MESSAGES) + 1),
        help="replies per session",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-hook-latency-"))
    print(f"logs in {workdir}")
    started = time.monotonic()
    with Devstack(DEFAULT_ROOT, run_dir=workdir, llm_port=None) as endpoints:
        result = asyncio.run(run(endpoints, workdir, args.sessions, args.replies))
    result["at"] = datetime.now(UTC).isoformat()
    result["took_s"] = round(time.monotonic() - started, 1)
    rows = []
    for arm in ("hanging receiver", "no subscription"):
        f, w = result["first_text_ms"][arm], result["whole_reply_ms"][arm]
        rows.append(
            [
                arm,
                str(f["n"]),
                fmt(f["p50"], " ms", 0),
                fmt(f["p95"], " ms", 0),
                fmt(w["p50"], " ms", 0),
                fmt(w["p95"], " ms", 0),
            ]
        )
    print_table(
        "reply latency (send on lk.chat -> reply)",
        ["arm", "replies", "first p50", "first p95", "whole p50", "whole p95"],
        rows,
    )
    print(
        f"p95 first-text ratio hanging/none: {fmt(result['p95_ratio_first_text'], '', 2)}; "
        f"receiver held {result['receiver_connections_held']} connections, "
        f"{result['deliveries_pending_at_end']} deliveries still pending (retrying) at the end"
    )
    print(f"results: {write_results('webhook_reply_latency', result)}")


if __name__ == "__main__":
    main()
