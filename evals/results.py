"""A suite's run, stored in `eval_runs` and announced as an `eval.completed` CloudEvent.

The event goes into the same `outbox` collection the worker and the admin API write, so the
dispatcher delivers it to the webhook subscriptions like any other event. It is written after
the run document (a receiver can read the run it names). The runner is a command, not a
service: a write that fails fails the command (exit 2) instead of being spooled.
"""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import EVALS_SOURCE, OUTBOX, EventType, new_event
from agent_configs.eval_runs import RunStatus, fingerprints, new_run_id, progress
from agent_configs.evals import EVAL_RUNS, Suite
from agent_configs.models import AgentConfig
from evals.runner import ScenarioResult, all_passed

SESSIONS = "sessions"


def models_of(config: AgentConfig) -> dict[str, Any]:
    """The models the run was made with (the version under test, fallbacks included)."""
    llm = [f"{config.llm.provider}/{config.llm.model}"] + [
        f"{f.provider}/{f.model}" for f in config.llm.fallback
    ]
    return {
        "llm": llm,
        "stt": f"{config.stt.provider}/{config.stt.model}" if config.stt else None,
        "tts": f"{config.tts.provider}/{config.tts.model}" if config.tts else None,
    }


async def session_tokens(
    database: AsyncDatabase, rooms: list[str], wait_s: float
) -> dict[str, int] | None:
    """Tokens the run's sessions used, from their end records (`cost.llm`): written when a
    session ends, shortly after the runner leaves its room; None if none had ended by then."""
    deadline = time.monotonic() + wait_s
    while True:
        records = [
            r
            async for r in database[SESSIONS].find(
                {"room": {"$in": rooms}, "status": "ended"}, {"cost": 1}
            )
        ]
        if len(records) >= len(rooms) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.25)
    if not records:
        return None
    spent = [c for r in records for c in (r.get("cost") or {}).get("llm", [])]
    return {
        "input": sum(int(c.get("input_tokens", 0)) for c in spent),
        "output": sum(int(c.get("output_tokens", 0)) for c in spent),
        "sessions_counted": len(records),
        "sessions": len(rooms),
    }


def run_document(
    *,
    agent_id: str,
    config: AgentConfig,
    suite: Suite,
    pinned: bool,
    results: list[ScenarioResult],
    started_at: datetime,
    wall_time_s: float,
    tokens: dict[str, int] | None,
    run_id: str | None = None,
    requested_by: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The completed run (agent_configs/eval_runs.py has the queued and running ones); `extra`
    keeps what a queued run already had (its request's time, its repeat)."""
    attempts = sum(len(r.attempts) for r in results)
    return (extra or {}) | {
        "_id": run_id or new_run_id(),
        "agent_id": agent_id,
        "version": config.version,
        "pinned": pinned,
        "status": RunStatus.COMPLETED.value,
        **fingerprints(config, suite),
        "progress": progress(attempts, attempts, None),
        "requested_by": requested_by,
        "error": None,
        "models": models_of(config),
        "passed": all_passed(results),
        "scenarios": [r.document() for r in results],
        "tokens": tokens,
        "started_at": started_at,
        "ended_at": datetime.now(UTC),
        "wall_time_s": round(wall_time_s, 3),
    }


def completed_data(run: dict[str, Any]) -> dict[str, Any]:
    """`eval.completed`'s data: the outcome, not the transcripts (the run holds those).

    {"run_id": "evr_...", "agent_id": "support-agent-v1", "version": 3, "passed": false,
     "scenarios": [{"name": "billing question", "pass_rate": 0.5, "passed": false}],
     "wall_time_s": 12.4}
    """
    return {
        "run_id": run["_id"],
        "agent_id": run["agent_id"],
        "version": run["version"],
        "passed": run["passed"],
        "scenarios": [
            {"name": s["name"], "pass_rate": s["pass_rate"], "passed": s["passed"]}
            for s in run["scenarios"]
        ],
        "wall_time_s": run["wall_time_s"],
    }


async def store_run(database: AsyncDatabase, run: dict[str, Any]) -> None:
    """Stores the completed run whole (replacing the queued/running document of the same id
    when a run service ran it), then its `eval.completed`."""
    await database[EVAL_RUNS].replace_one({"_id": run["_id"]}, run, upsert=True)
    at = datetime.now(UTC)
    event = new_event(
        EventType.EVAL_COMPLETED,
        EVALS_SOURCE,
        run["_id"],
        completed_data(run),
        agent_id=run["agent_id"],
        ordering_key=f"agent:{run['agent_id']}",
        seq=int(at.timestamp() * 1000),
        at=at,
    )
    await database[OUTBOX].insert_one(event)
