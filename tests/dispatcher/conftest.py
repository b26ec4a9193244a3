"""Real dispatcher processes (`python -m dispatcher`) against the session's FerretDB, a real
receiver on loopback (receiver.py), and outbox events and subscriptions written directly (as
the worker and the admin API write them)."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs import cloudevents, webhook_secrets
from agent_configs.cloudevents import DELIVERIES, OUTBOX, SUBSCRIPTIONS, EventType
from agent_configs.database import bson_now
from devstack import REPO_ROOT, Endpoints
from tests.dispatcher.receiver import Receiver

SECRET_ENV = "TEST_WEBHOOK_SECRET"
"""An env-named signing secret: the egress policy lets it go to loopback only."""

FAST = {
    # Short enough for tests, in the same proportions as the defaults.
    "DISPATCHER_POLL_INTERVAL_S": "0.1",
    "DISPATCHER_TIMEOUT_S": "3",
    "DISPATCHER_LEASE_S": "5",
    "DISPATCHER_BACKOFF_INITIAL_S": "0.2",
    "DISPATCHER_BACKOFF_MAX_S": "1",
    "DISPATCHER_SHUTDOWN_GRACE_S": "5",
    "DISPATCHER_STATS_INTERVAL_S": "0.5",
}


new_secret = webhook_secrets.generate


@pytest.fixture(scope="session")
def encryption_key() -> str:
    """The operator key generated secrets are stored under, in this process and the dispatchers."""
    key = Fernet.generate_key().decode()
    os.environ["WEBHOOK_ENCRYPTION_KEY"] = key
    return key


@dataclass
class RunningDispatcher:
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def metrics_port(self) -> int:
        match = re.search(r"metrics on [^:]+:(\d+)", self.log_path.read_text(errors="replace"))
        assert match, f"the dispatcher did not log its metrics port:\n{self.log_tail()}"
        return int(match.group(1))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metric(self, name: str) -> float:
        """Sum of one metric's samples from /metrics."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#") and (line[len(name)] in " {")
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


Start = Callable[..., Awaitable[RunningDispatcher]]


@pytest.fixture
async def start_dispatcher(
    endpoints: Endpoints, database_name: str, tmp_path: Path, encryption_key: str
) -> AsyncIterator[Start]:
    started: list[RunningDispatcher] = []

    async def start(**env: str) -> RunningDispatcher:
        log_path = tmp_path / f"dispatcher-{len(started)}.log"
        full_env = (
            os.environ
            | {
                "MONGO_URI": endpoints.mongo_uri,
                "MONGO_DB": database_name,
                "MONGO_TIMEOUT_MS": "2000",
                "DISPATCHER_METRICS_PORT": "0",
                "WEBHOOK_ENCRYPTION_KEY": encryption_key,
                "EGRESS_SECRETS": f'{{"{SECRET_ENV}": ["loopback"]}}',
            }
            | FAST
            | env
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dispatcher"],
                cwd=REPO_ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = RunningDispatcher(process, log_path)
        started.append(running)
        await until(lambda: _ready(running), f"dispatcher ready\n{running.log_tail()}", timeout=30)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(10)


def _ready(running: RunningDispatcher) -> bool:
    if running.process.poll() is not None:
        raise AssertionError(
            f"the dispatcher exited with {running.process.returncode}:\n{running.log_tail()}"
        )
    if "metrics on" not in running.log_path.read_text(errors="replace"):
        return False
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{running.metrics_port}/readyz", timeout=1
        ) as response:
            return response.status == 200
    except OSError:
        return False


async def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Wait for `condition()` (sync or async) to be truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(secrets={})
    yield made
    made.stop()


# -- documents, as their writers make them ------------------------------------------------


async def add_subscription(
    database: AsyncDatabase,
    url: str,
    *,
    secret: str | None = None,
    env_secret: bool = False,
    event_types: list[str] | None = None,
    agent_ids: list[str] | None = None,
    status: str = "enabled",
    previous_secret: str | None = None,
) -> dict[str, Any]:
    """A generated secret stored encrypted (webhook_secrets), or the env-named SECRET_ENV."""
    now = bson_now()
    if env_secret:
        stored: dict[str, Any] = {"kind": "env", "env": SECRET_ENV}
    else:
        assert secret is not None
        stored = webhook_secrets.generated_secret(secret)
    previous = None
    if previous_secret is not None:
        previous = webhook_secrets.generated_secret(previous_secret) | {
            "valid_until": now + timedelta(hours=1)
        }
    subscription = {
        "_id": f"sub_{uuid.uuid4().hex[:24]}",
        "url": url,
        "description": "test receiver",
        "event_types": event_types or ["*"],
        "agent_ids": agent_ids,
        "status": status,
        "secret": stored,
        "previous_secret": previous,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    await database[SUBSCRIPTIONS].insert_one(subscription)
    return subscription


def session_events(
    session_id: str, turns: int, agent_id: str = "support-agent-v1"
) -> list[dict[str, Any]]:
    """started (seq 0), `turns` turn.completed (seq 1..), ended (LAST_SEQ), as the worker writes them."""
    events = [
        cloudevents.session_event(
            EventType.SESSION_STARTED,
            session_id,
            agent_id,
            "started",
            0,
            {"session_id": session_id, "agent_id": agent_id, "routing": {"strategy": "explicit"}},
        )
    ]
    for n in range(turns):
        events.append(
            cloudevents.session_event(
                EventType.TURN_COMPLETED,
                session_id,
                agent_id,
                f"turn:{n}",
                n + 1,
                {
                    "session_id": session_id,
                    "turn_index": n,
                    "reply": f"reply {n}",
                    "fields": {"n": n},
                },
            )
        )
    events.append(
        cloudevents.session_event(
            EventType.SESSION_ENDED,
            session_id,
            agent_id,
            "ended",
            cloudevents.LAST_SEQ,
            {
                "session_id": session_id,
                "agent_id": agent_id,
                "summary": "done",
                "turn_count": turns,
            },
        )
    )
    return events


async def write_outbox(database: AsyncDatabase, events: list[dict[str, Any]]) -> None:
    for event in events:
        await database[OUTBOX].update_one({"_id": event["_id"]}, {"$set": event}, upsert=True)


async def deliveries(database: AsyncDatabase, **query: Any) -> list[dict[str, Any]]:
    return await database[DELIVERIES].find(query).to_list(None)


def all_done(database: AsyncDatabase, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (
            await database[DELIVERIES].count_documents({"status": {"$in": ["delivered", "failed"]}})
            >= count
        )

    return check
