"""The eval run service (`python -m evals serve`): runs requested through the admin API are
claimed, run through the real path with their progress written after every attempt, and stored
completed as the CLI stores them; two services never run the same run; a run that cannot run or
whose service stopped ends as an error, never `running` forever."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import OUTBOX
from agent_configs.database import bson_now
from agent_configs.eval_runs import EVAL_RUN_CLAIMS, SERVICE_STOPPED, queued_run
from agent_configs.evals import EVAL_RUNS, EVAL_SUITES, Suite
from agent_configs.fingerprints import definition_digest, suite_digest
from agent_configs.store import ConfigStore
from devstack import Endpoints
from devstack.services import EVALS_READY
from evals.service import STARTED, RunService
from evals.settings import EvalServiceSettings
from tests.admin_api.conftest import Keys, admin_settings, make_keys, running_app, seed_defaults
from tests.evals.run_service import launched_run_service, run_service_env
from tests.worker.conftest import RunningWorker
from tests.worker.scripted_llm import REPLY

SALES = "sales-agent-v1"
DEADLINE_S = 60.0


def sales_suite(*names: str) -> Suite:
    scenario = {
        "metadata": {"purpose": "sales", "modality": "text"},
        "routed_to": SALES,
        # The reply, never the greeting (which ends "What brings you here today?"): the
        # runner types its first line only once the agent has greeted.
        "turns": [{"user": "Hello.", "expect": {"agent": SALES, "reply_contains": [REPLY]}}],
    }
    return Suite.model_validate(
        {"agent_id": SALES, "scenarios": [scenario | {"name": name} for name in names]}
    )


async def until(
    read: Callable[[], Awaitable[dict[str, Any]]], done: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Polls `read` until `done` holds; returns the last read and every read before it."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = await read()
        if done(value):
            return value, seen
        seen.append(value)
        await asyncio.sleep(0.05)
    raise AssertionError(f"not done in {DEADLINE_S} s; last: {seen[-1:]}")


async def test_a_run_posted_to_the_api_is_claimed_shows_progress_and_is_stored_completed(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    scripted_worker: RunningWorker,
    tmp_path: Path,
) -> None:
    suite = sales_suite("first", "second")
    await worker_database[EVAL_SUITES].replace_one({"_id": SALES}, suite.document(), upsert=True)
    keys: Keys = await make_keys(worker_database)
    env = run_service_env(
        endpoints, worker_database.name, scripted_worker.agent_name, EVALS_TOKENS_WAIT_S="0"
    )
    settings = admin_settings(endpoints, worker_database.name)
    async with running_app(settings) as (_, api):
        with launched_run_service(env, tmp_path / "evals.log") as service:
            posted = await api.post(
                f"/api/v1/agents/{SALES}/eval-runs", json={}, headers=keys.header("admin")
            )
            assert posted.status_code == 202, posted.text

            async def read() -> dict[str, Any]:
                got = await api.get(posted.headers["location"], headers=keys.header("viewer"))
                assert got.status_code == 200, got.text
                body: dict[str, Any] = got.json()
                return body

            try:
                run, before = await until(read, lambda r: r["status"] in ("completed", "error"))
            except AssertionError:
                print(service.log_tail())
                raise
            # While it ran: one attempt of two done, the first scenario finished and listed.
            halfway = [r for r in before if r["status"] == "running"]
            assert any(
                r["progress"] == {"attempts_done": 1, "attempts_total": 2, "scenario": "second"}
                and [s["name"] for s in r["scenarios"]] == ["first"]
                for r in halfway
            ), (before, service.log_tail())
        assert service.process.returncode == 0, service.log_tail()  # SIGTERM: a clean stop
    config = await ConfigStore(worker_database).get(SALES)
    assert run["status"] == "completed", (run, service.log_tail())
    failures = [f for s in run["scenarios"] for f in s["failures"]]
    assert (run["passed"], run["error"], run["requested_by"]) == (True, None, "test-admin"), (
        failures
    )
    assert run["definition_digest"] == definition_digest(config)
    assert run["suite_digest"] == suite_digest(suite)
    assert run["progress"] == {"attempts_done": 2, "attempts_total": 2, "scenario": None}
    assert [s["name"] for s in run["scenarios"]] == ["first", "second"]
    event = await worker_database[OUTBOX].find_one({"subject": run["run_id"]})
    assert event is not None and event["type"] == "eval.completed"
    assert await worker_database[EVAL_RUN_CLAIMS].count_documents({}) == 0


@pytest.fixture
async def seeded_database(database: AsyncDatabase) -> AsyncIterator[AsyncDatabase]:
    await seed_defaults(database)
    await database[EVAL_SUITES].insert_one(sales_suite("only").document())
    yield database


def service_on(
    endpoints: Endpoints, database: AsyncDatabase, owner: str, **settings: Any
) -> RunService:
    values = {
        "mongo_uri": endpoints.mongo_uri,
        "mongo_db": database.name,
        "livekit_url": endpoints.livekit_url,
        "livekit_api_key": endpoints.livekit_api_key,
        "livekit_api_secret": endpoints.livekit_api_secret,
    }
    service = RunService(
        EvalServiceSettings(_env_file=None, **(values | settings)), database, owner=owner
    )
    return service


async def queue(database: AsyncDatabase, version: int | None = None) -> str:
    store = ConfigStore(database)
    config = await (store.get_version(SALES, version) if version else store.get(SALES))
    run = queued_run(
        config=config,
        suite=sales_suite("only"),
        pinned=version is not None,
        repeat=None,
        requested_by="test",
        at=bson_now(),
    )
    await database[EVAL_RUNS].insert_one(run)
    return str(run["_id"])


async def test_two_services_never_claim_the_same_run(
    endpoints: Endpoints, seeded_database: AsyncDatabase
) -> None:
    one = service_on(endpoints, seeded_database, "one")
    two = service_on(endpoints, seeded_database, "two")
    await one.claims.ensure_indexes()
    for _ in range(10):
        run_id = await queue(seeded_database)
        claimed = await asyncio.gather(one.claim_next(), two.claim_next())
        winners = [c for c in claimed if c is not None]
        assert len(winners) == 1 and winners[0][0]["_id"] == run_id
        await seeded_database[EVAL_RUNS].update_one(
            {"_id": run_id}, {"$set": {"status": "completed"}}
        )
        await one.claims.release(winners[0][1])


async def test_runs_that_cannot_run_or_whose_service_stopped_end_as_errors_saying_why(
    endpoints: Endpoints, seeded_database: AsyncDatabase
) -> None:
    runs = seeded_database[EVAL_RUNS]
    # Nobody serves this agent name: the first attempt's room stays empty.
    service = service_on(
        endpoints, seeded_database, "alive", agent_name="nobody-serves-this", evals_join_timeout_s=1
    )
    await service.claims.ensure_indexes()

    unknown = await queue(seeded_database, version=1)
    await runs.update_one({"_id": unknown}, {"$set": {"version": 99}})
    assert await service.step()
    stored = await runs.find_one({"_id": unknown})
    assert stored is not None and stored["status"] == "error"
    assert stored["error"] == f"agent '{SALES}' version 99 does not exist"

    empty_room = await queue(seeded_database)
    assert await service.step()
    stored = await runs.find_one({"_id": empty_room})
    assert stored is not None and stored["status"] == "error", stored
    assert stored["error"].startswith("no agent joined the run's room within 1 s")
    assert "AGENT_NAME=nobody-serves-this" in stored["error"]

    # A service that died mid-run: its claim is past its lease. One that lives keeps its run.
    dead, alive = await queue(seeded_database), await queue(seeded_database)
    await runs.update_many({"_id": {"$in": [dead, alive]}}, {"$set": {"status": "running"}})
    now = bson_now()
    await seeded_database[EVAL_RUN_CLAIMS].insert_many(
        [
            {"_id": "c1", "run_id": dead, "owner": "dead", "until": now - timedelta(seconds=1)},
            {"_id": "c2", "run_id": alive, "owner": "busy", "until": now + timedelta(seconds=60)},
        ]
    )
    assert await service.sweep_stale() == [dead]
    stored = await runs.find_one({"_id": dead})
    assert stored is not None and (stored["status"], stored["error"]) == ("error", SERVICE_STOPPED)
    assert (await runs.find_one({"_id": alive}) or {})["status"] == "running"

    # Stopped while running (SIGTERM): the run ends as an error and its claim is released.
    stopped = await queue(seeded_database)
    slow = service_on(
        endpoints,
        seeded_database,
        "stopping",
        agent_name="nobody-serves-this",
        evals_join_timeout_s=30,
    )
    stepping = asyncio.create_task(slow.step())
    await until(lambda: _run(runs, stopped), lambda r: r["status"] == "running")
    slow.stop()
    assert await asyncio.wait_for(stepping, 10)
    stored = await runs.find_one({"_id": stopped})
    assert stored is not None and (stored["status"], stored["error"]) == ("error", SERVICE_STOPPED)
    assert await seeded_database[EVAL_RUN_CLAIMS].count_documents({"run_id": stopped}) == 0


async def _run(runs: Any, run_id: str) -> dict[str, Any]:
    return await runs.find_one({"_id": run_id}) or {}


def test_make_dev_waits_for_the_line_the_service_logs_when_it_starts() -> None:
    assert EVALS_READY == STARTED
