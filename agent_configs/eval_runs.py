"""An eval run's life in `eval_runs`: queued (the admin API), running (the run service, with its
progress), then completed (the runner's result) or error (it could not run, or its service
stopped). Shared by the admin API, which queues runs, and `python -m evals serve`, which runs
them; the CLI stores completed runs straight away.

    {"_id": "evr_...", "agent_id": "support-agent-v1", "version": 3, "pinned": true,
     "status": "running", "definition_digest": "sha256:...", "suite_digest": "sha256:...",
     "progress": {"attempts_done": 1, "attempts_total": 4, "scenario": "billing question"},
     "requested_by": "ops-admin", "error": null, "repeat": null, "passed": false,
     "scenarios": [...the scenarios finished so far...], "started_at": ..., "queued_at": ...}

A document without `status` was stored by the CLI before runs had one: it is completed.
"""

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import uuid4

from agent_configs.evals import Suite
from agent_configs.fingerprints import definition_digest, suite_digest
from agent_configs.models import AgentConfig

EVAL_RUN_CLAIMS = "eval_run_claims"
"""One document per run a service is running: `{_id, run_id (unique), owner, until}`."""

EVAL_RUN_KEY = "switchboard_eval_run"
"""The job (dispatch) metadata key naming the eval run a room belongs to. The worker writes it
on the session record (`eval_run_id`) so live statistics (A/B analytics) leave eval traffic
out. Read from the job metadata only, as the pin is: the one metadata a participant cannot
write (agent_configs/routing/pin.py)."""
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

SERVICE_STOPPED = "the run service stopped"
"""The error of a run whose service died (or was stopped) while running it."""


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"


def eval_run_of_job(raw: Mapping[str, Any]) -> str | None:
    """The eval run id in a job's parsed metadata; a malformed one is not an eval's."""
    value = raw.get(EVAL_RUN_KEY)
    return value if isinstance(value, str) and _RUN_ID.match(value) else None


def new_run_id() -> str:
    return f"evr_{uuid4().hex}"


def attempts_total(suite: Suite, repeat: int | None = None) -> int:
    """Every scenario's attempts: `repeat` overrides each scenario's own."""
    return sum(repeat or s.repeat for s in suite.scenarios)


def progress(attempts_done: int, attempts_total: int, scenario: str | None) -> dict[str, Any]:
    return {"attempts_done": attempts_done, "attempts_total": attempts_total, "scenario": scenario}


def fingerprints(config: AgentConfig, suite: Suite) -> dict[str, str]:
    """What the release gate matches a run on: the definition tested and the suite it ran."""
    return {"definition_digest": definition_digest(config), "suite_digest": suite_digest(suite)}


def queued_run(
    *,
    config: AgentConfig,
    suite: Suite,
    pinned: bool,
    repeat: int | None,
    requested_by: str | None,
    at: datetime,
) -> dict[str, Any]:
    """A run waiting for a run service. `started_at` is the request's time until a service
    starts it (the runs are listed newest first by it); `version` and the digests are the
    version's at the request, and are written again when the run starts (an unpinned run
    tests the version current then)."""
    return {
        "_id": new_run_id(),
        "agent_id": config.agent_id,
        "version": config.version,
        "pinned": pinned,
        "repeat": repeat,
        "status": RunStatus.QUEUED.value,
        **fingerprints(config, suite),
        "progress": progress(0, attempts_total(suite, repeat), None),
        "requested_by": requested_by,
        "error": None,
        "passed": False,
        "scenarios": [],
        "queued_at": at,
        "started_at": at,
        "ended_at": None,
    }
