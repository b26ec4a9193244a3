"""One suite's run from the version under test to the stored run: what `python -m evals run`
does for each suite and what the run service does for each queued run, written once."""

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.eval_runs import new_run_id
from agent_configs.evals import Suite
from agent_configs.models import AgentConfig
from agent_configs.routing.pin import AgentPin
from agent_configs.store import ConfigStore
from evals.results import run_document, session_tokens, store_run
from evals.runner import OnAttempt, Stack, run_suite


async def no_progress(*_: object) -> None:
    return None


async def version_under_test(
    database: AsyncDatabase, agent_id: str, version: int | None
) -> tuple[AgentConfig, AgentPin | None]:
    """The stored version pinned (`--version N`), or the current one with routing deciding;
    AgentNotFound names the type (and version) that does not exist."""
    store = ConfigStore(database)
    if version is None:
        return await store.get(agent_id), None
    return await store.get_version(agent_id, version), AgentPin(agent_id, version)


async def run_and_store(
    database: AsyncDatabase,
    stack: Stack,
    suite: Suite,
    config: AgentConfig,
    pin: AgentPin | None,
    *,
    repeat: int | None = None,
    tokens_wait_s: float = 10.0,
    run_id: str | None = None,
    requested_by: str | None = None,
    extra: dict[str, Any] | None = None,
    on_attempt: OnAttempt = no_progress,
) -> dict[str, Any]:
    """Runs the suite, stores the completed run and its `eval.completed`; returns the run."""
    run_id = run_id or new_run_id()
    # session_ended reads the sessions' end in the database; the rooms carry the run's id
    stack = replace(stack, database=database, run_id=run_id)
    started_at, started = datetime.now(UTC), time.monotonic()
    results = await run_suite(suite, stack, pin, repeat, on_attempt)
    wall_time_s = time.monotonic() - started
    rooms = [room for r in results for room in r.document()["rooms"]]
    tokens = await session_tokens(database, rooms, tokens_wait_s)
    run = run_document(
        agent_id=suite.agent_id,
        config=config,
        suite=suite,
        pinned=pin is not None,
        results=results,
        started_at=started_at,
        wall_time_s=wall_time_s,
        tokens=tokens,
        run_id=run_id,
        requested_by=requested_by,
        extra=extra,
    )
    run["models"] |= stack.helper_models(suite)
    await store_run(database, run)
    return run
