"""`python -m evals serve`: runs the queued eval runs (POST /api/v1/agents/{id}/eval-runs) one
at a time, until SIGTERM.

Each pass: runs left `running` by a service that died are marked error ("the run service
stopped"), then the oldest queued run is claimed (evals/claims.py: an insert against a unique
index, so two services never run the same run) and run through the real path, as `python -m
evals run` runs a suite (evals/execution.py, the same code): the progress and the scenarios
finished so far are written after every attempt, and the completed run and its
`eval.completed` are stored as the CLI stores them. A run that cannot run (its type, version or
suite gone, no worker joining its rooms, LiveKit unreachable) is marked error with why.

SIGTERM (or Ctrl-C): no new claim; the run in progress is stopped and marked error ("the run
service stopped"), its claim released, then the process exits.
"""

import asyncio
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from agent_configs.database import bson_now, open_database
from agent_configs.errors import AgentNotFound
from agent_configs.eval_runs import (
    SERVICE_STOPPED,
    RunStatus,
    attempts_total,
    fingerprints,
    progress,
)
from agent_configs.evals import EVAL_RUNS, EVAL_SUITES, Scenario, Suite
from evals.claims import Claim, RunClaims
from evals.execution import run_and_store, version_under_test
from evals.runner import Attempt, ScenarioResult, Stack
from evals.settings import EvalServiceSettings

logger = logging.getLogger("switchboard.evals")

DATABASE_RETRY_MAX_S = 10.0
STARTED = "eval run service started"
"""Logged once the service has its claim index and looks for runs (devstack and the tests wait
for it)."""


class CannotRun(Exception):
    """The run cannot produce a result; the message is the run's `error`."""


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def never_joined(attempt: Attempt) -> bool:
    """No agent in the room: the attempt timed out waiting for the routing decision (the agent's
    `switchboard.agent_id` attribute, the first thing a worker's agent sets) or could not join
    LiveKit at all. Every later attempt would wait as long for nothing."""
    error = attempt.error or ""
    return error.startswith("could not join the room") or (
        "switchboard.agent_id" in error and not attempt.outcomes
    )


@dataclass
class Progress:
    """What the run document shows while running: attempts done, the scenario being run, and
    each scenario finished so far (its result as the completed run will hold it)."""

    suite: Suite
    repeat: int | None
    stack: Stack
    done: int = 0
    finished: list[dict[str, Any]] = field(default_factory=list)
    _attempts: list[Attempt] = field(default_factory=list)

    @property
    def plan(self) -> list[Scenario]:
        return [s for s in self.suite.scenarios for _ in range(self.repeat or s.repeat)]

    def fields(self) -> dict[str, Any]:
        plan = self.plan
        scenario = plan[self.done].name if self.done < len(plan) else None
        return {
            "progress": progress(self.done, attempts_total(self.suite, self.repeat), scenario),
            "scenarios": self.finished,
        }

    def record(self, scenario: Scenario, attempt: Attempt) -> None:
        if never_joined(attempt):
            raise CannotRun(
                f"no agent joined the run's room within {self.stack.join_timeout_s:.0f} s "
                f"({attempt.error}): is a worker running with AGENT_NAME="
                f"{self.stack.worker_agent_name}?"
            )
        self.done += 1
        self._attempts.append(attempt)
        if len(self._attempts) == (self.repeat or scenario.repeat):
            self.finished.append(ScenarioResult(scenario, self._attempts).document())
            self._attempts = []


class RunService:
    def __init__(
        self,
        settings: EvalServiceSettings,
        database: AsyncDatabase | None = None,
        owner: str | None = None,
    ) -> None:
        self._settings = settings
        self._db = database if database is not None else open_database(settings)
        self.owner = owner or owner_id()
        self.claims = RunClaims(self._db, self.owner, settings.evals_lease_s)
        self.stack = Stack(
            settings.livekit_url or "",
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
            settings.agent_name,
            turn_timeout_s=settings.evals_turn_timeout_s,
            join_timeout_s=settings.evals_join_timeout_s,
        )
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until stop() (SIGTERM, SIGINT); a database that is away only pauses the loop."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        try:
            await self._until_ready()
            if self._stopping.is_set():
                return
            logger.info("%s (%s, agent name %s)", STARTED, self.owner, self.stack.worker_agent_name)
            backoff = self._settings.evals_poll_interval_s
            while not self._stopping.is_set():
                try:
                    worked = await self.step()
                    backoff = self._settings.evals_poll_interval_s
                except PyMongoError as exc:
                    logger.warning("database unavailable (%s); retrying", str(exc).split(",")[0])
                    worked = False
                    backoff = min(backoff * 2, DATABASE_RETRY_MAX_S)
                if not worked:
                    await self._sleep(backoff)
        finally:
            await self._db.client.close()
        logger.info("eval run service %s stopped", self.owner)

    async def _until_ready(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.claims.ensure_indexes()
                await self._db[EVAL_RUNS].create_index([("status", 1), ("started_at", 1)])
                return
            except PyMongoError as exc:  # no claims without their unique index
                logger.warning("database unavailable (%s); waiting", str(exc).split(",")[0])
                await self._sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def step(self) -> bool:
        """One pass: stale runs marked, then one queued run run. True when a run was run."""
        await self.sweep_stale()
        claimed = await self.claim_next()
        if claimed is None:
            return False
        run, claim = claimed
        task = asyncio.create_task(self.execute(run, claim), name=f"eval-run {run['_id']}")
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def claim_next(self) -> tuple[dict[str, Any], Claim] | None:
        """The oldest queued run this service could claim, and its claim."""
        queued = self._db[EVAL_RUNS].find(
            {"status": RunStatus.QUEUED.value}, {"_id": 1}, sort=[("started_at", 1)], limit=20
        )
        async for candidate in queued:
            claim = await self.claims.take(candidate["_id"])
            if claim is None:
                continue
            # Read again under the claim: another service may have run it to the end and
            # released its claim between our find and our insert.
            run = await self._db[EVAL_RUNS].find_one({"_id": candidate["_id"]})
            if run is not None and run.get("status") == RunStatus.QUEUED.value:
                return run, claim
            await self.claims.release(claim)
        return None

    async def sweep_stale(self) -> list[str]:
        """Marks error each run left `running` by a service that stopped (its claim gone or
        past its `until`): taking the claim over first, so only one service marks it."""
        marked = []
        running = self._db[EVAL_RUNS].find({"status": RunStatus.RUNNING.value}, {"_id": 1})
        for run_id in [r["_id"] async for r in running]:
            held = await self.claims.holder(run_id)
            if held is not None and held["until"] > bson_now():
                continue
            claim = await self.claims.take(run_id)
            if claim is None:
                continue
            try:
                run = await self._db[EVAL_RUNS].find_one({"_id": run_id}, {"status": 1})
                if run is not None and run.get("status") == RunStatus.RUNNING.value:
                    await self._mark_error(run_id, SERVICE_STOPPED)
                    logger.warning("run %s: its service stopped while running it", run_id)
                    marked.append(run_id)
            finally:
                await self.claims.release(claim)
        return marked

    async def execute(self, run: dict[str, Any], claim: Claim) -> None:
        """Runs a claimed run to completed or error, renewing the claim meanwhile."""
        run_id = run["_id"]
        heartbeat = asyncio.create_task(self._heartbeat(claim, asyncio.current_task()))
        try:
            await self._execute(run)
        except CannotRun as exc:
            logger.warning("run %s cannot run: %s", run_id, exc)
            await self._mark_error(run_id, str(exc))
        except asyncio.CancelledError:
            await asyncio.shield(self._mark_error(run_id, SERVICE_STOPPED))
            raise
        except Exception as exc:
            logger.exception("run %s failed", run_id)
            await self._mark_error(run_id, f"the run failed: {type(exc).__name__}: {exc}")
        finally:
            heartbeat.cancel()
            await asyncio.shield(self.claims.release(claim))

    async def _execute(self, run: dict[str, Any]) -> None:
        run_id, agent_id = run["_id"], run["agent_id"]
        document = await self._db[EVAL_SUITES].find_one({"_id": agent_id})
        if document is None:
            raise CannotRun(f"agent type '{agent_id}' has no eval suite (any more)")
        suite = Suite.from_document(document)
        try:
            config, pin = await version_under_test(
                self._db, agent_id, run["version"] if run.get("pinned") else None
            )
        except AgentNotFound as exc:
            raise CannotRun(str(exc)) from None
        repeat = run.get("repeat")
        tracker = Progress(suite, repeat, self.stack)
        await self._db[EVAL_RUNS].update_one(
            {"_id": run_id},
            {
                "$set": {
                    "status": RunStatus.RUNNING.value,
                    "version": config.version,
                    **fingerprints(config, suite),
                    "started_at": bson_now(),
                    "runner": self.owner,
                    **tracker.fields(),
                }
            },
        )
        logger.info("run %s: %s version %d started", run_id, agent_id, config.version)

        async def on_attempt(scenario: Scenario, attempt: Attempt) -> None:
            tracker.record(scenario, attempt)
            try:
                await self._db[EVAL_RUNS].update_one({"_id": run_id}, {"$set": tracker.fields()})
            except PyMongoError as exc:  # progress is for watching: the run goes on
                logger.warning("run %s: progress not written (%s)", run_id, exc)

        completed = await run_and_store(
            self._db,
            self.stack,
            suite,
            config,
            pin,
            repeat=repeat,
            tokens_wait_s=self._settings.evals_tokens_wait_s,
            run_id=run_id,
            requested_by=run.get("requested_by"),
            extra={"repeat": repeat, "queued_at": run.get("queued_at"), "runner": self.owner},
            on_attempt=on_attempt,
        )
        logger.info(
            "run %s: %s (%.1f s)",
            run_id,
            "passed" if completed["passed"] else "FAILED",
            completed["wall_time_s"],
        )

    async def _heartbeat(self, claim: Claim, task: "asyncio.Task[Any] | None") -> None:
        while True:
            await asyncio.sleep(self.claims.lease_s / 3)
            try:
                if not await self.claims.renew(claim):
                    logger.error("run %s: claim lost (taken over); stopping it", claim.run_id)
                    if task is not None:
                        task.cancel()
                    return
            except PyMongoError as exc:
                logger.warning("run %s: claim not renewed (%s)", claim.run_id, exc)

    async def _mark_error(self, run_id: str, error: str) -> None:
        try:
            await self._db[EVAL_RUNS].update_one(
                {"_id": run_id},
                {"$set": {"status": RunStatus.ERROR.value, "error": error, "ended_at": bson_now()}},
            )
        except PyMongoError as exc:
            logger.error("run %s: could not be marked error (%s): %s", run_id, exc, error)
