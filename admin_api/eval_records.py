"""Reading and writing eval suites and reading eval runs (collections `eval_suites`, `eval_runs`).

The suites' shape is agent_configs/evals.py's `Suite` (stored as `Suite.document()`, as the
seeder does); the runs' is the runner's (evals/results.py `run_document`): these models name
the fields the API relies on and pass any others through, so a new runner field shows up
without an API change.
"""

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.database import AsyncDatabase

from admin_api.storage import newest_first_page, newest_first_query
from agent_configs.database import database_errors
from agent_configs.eval_runs import RunStatus
from agent_configs.evals import EVAL_RUNS, EVAL_SUITES, Suite


class RunModels(BaseModel):
    """The models of the version under test: the LLM first, then its fallbacks."""

    model_config = ConfigDict(extra="allow")

    llm: list[str] = Field(default_factory=list)
    stt: str | None = None
    tts: str | None = None


class RunTokens(BaseModel):
    """Tokens from the sessions' end records; `sessions_counted` of `sessions` had ended."""

    model_config = ConfigDict(extra="allow")

    input: int
    output: int
    sessions_counted: int | None = None
    sessions: int | None = None


class TranscriptLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    text: str | None = None


class FailedExpectation(BaseModel):
    """One failed expectation of one attempt, named by its path in the suite
    (`turns[0].fields.urgency.one_of`), with the transcript up to its turn."""

    model_config = ConfigDict(extra="allow")

    attempt: int
    turn: int | None = Field(default=None, description="None for the greeting and routing.")
    expectation: str
    detail: str = ""
    transcript: list[TranscriptLine] = Field(default_factory=list)


class ScenarioOutcome(BaseModel):
    """A scenario's result as listed: its pass rate against the rate it needed."""

    name: str
    pass_rate: float
    required_pass_rate: float | None = None
    passed: bool


class ScenarioDetail(ScenarioOutcome):
    model_config = ConfigDict(extra="allow")

    repeat: int | None = None
    rooms: list[str] = Field(default_factory=list)
    wall_time_s: float | None = None
    failures: list[FailedExpectation] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


class RunProgress(BaseModel):
    """Attempts done of all the run's attempts, and the scenario being run (None when none is)."""

    attempts_done: int
    attempts_total: int
    scenario: str | None = None


class _Run(BaseModel):
    run_id: str
    agent_id: str
    version: int
    pinned: bool = False
    status: RunStatus = Field(
        default=RunStatus.COMPLETED,
        description="queued, running, completed or error; a run stored without one is completed.",
    )
    passed: bool = Field(default=False, description="Only meaningful when `status` is completed.")
    definition_digest: str | None = Field(
        default=None, description="agent_configs/fingerprints.py of the version tested."
    )
    suite_digest: str | None = Field(default=None, description="And of the suite it ran.")
    progress: RunProgress | None = None
    requested_by: str | None = Field(
        default=None, description="The API key's name that queued it (None: the CLI)."
    )
    error: str | None = Field(default=None, description="Why a run in `error` could not finish.")
    started_at: datetime
    ended_at: datetime | None = None
    wall_time_s: float | None = None
    tokens: RunTokens | None = Field(
        default=None, description="None when no session of the run had ended in time."
    )


class EvalRunSummary(_Run):
    """A suite's run as listed: no failures, no transcripts (GET /eval-runs/{run_id} has them)."""

    scenarios: list[ScenarioOutcome] = Field(
        default_factory=list, description="While running: the scenarios finished so far."
    )


class EvalRunDetail(_Run):
    models: RunModels | None = None
    scenarios: list[ScenarioDetail] = Field(
        default_factory=list, description="While running: the scenarios finished so far."
    )


class EvalRunPage(BaseModel):
    items: list[EvalRunSummary]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


MAX_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)


def unstorable(
    value: Any, path: str = "", depth: int = 0, in_array: bool = False
) -> list[tuple[str, str]]:
    """(field path, what is wrong) for each part of a suite FerretDB cannot store: the suite's
    free-form values (`metadata`, `equals`, `one_of`, tool `arguments`) may hold what the
    driver or FerretDB v1 refuse at write time (a 500 rather than a 422 naming the field):
    keys starting with `$` or holding `.`, an array in an array, integers beyond 64 bits,
    NaN or infinity, text that is not UTF-8 (agent_configs/writer.py measured the same)."""
    where = path or "(body)"
    if depth > MAX_DEPTH:
        return [(where, f"nests deeper than {MAX_DEPTH} levels")]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [] if _INT64[0] <= value <= _INT64[1] else [(where, "is beyond a 64-bit integer")]
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(where, "must be a finite number")]
    if isinstance(value, str):
        return [] if _utf8(value) else [(where, "is not valid UTF-8 text")]
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            named = f"{path}.{key}" if path else str(key)
            if not key or key.startswith("$") or "." in key or "\x00" in key or not _utf8(key):
                found.append((named, "a key may not be empty, start with $ or hold . or NUL"))
            else:
                found += unstorable(item, named, depth + 1)
    elif isinstance(value, list):
        if in_array:
            return [(where, "an array may not be an item of an array (not storable)")]
        for index, item in enumerate(value):
            found += unstorable(item, f"{path}.{index}" if path else str(index), depth + 1, True)
    return found


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _run_fields(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "_id"} | {"run_id": str(document["_id"])}


class EvalRecords:
    def __init__(self, database: AsyncDatabase) -> None:
        self._suites = database[EVAL_SUITES]
        self._runs = database[EVAL_RUNS]

    async def ensure_indexes(self) -> None:
        """The release gate's lookup of a passing run (admin_api/release_gate.py): one per
        gated save, activation, resume or routing change."""
        with database_errors():
            await self._runs.create_index(
                [
                    ("agent_id", 1),
                    ("definition_digest", 1),
                    ("suite_digest", 1),
                    ("status", 1),
                    ("passed", 1),
                ]
            )

    async def suite(self, agent_id: str) -> Suite | None:
        with database_errors():
            document = await self._suites.find_one({"_id": agent_id})
        return None if document is None else Suite.from_document(document)

    async def store_suite(self, suite: Suite) -> Suite:
        """Replaces the type's suite whole (one per type, keyed by the agent id)."""
        with database_errors():
            await self._suites.replace_one({"_id": suite.agent_id}, suite.document(), upsert=True)
        return suite

    async def page(
        self, agent_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> EvalRunPage:
        """Newest first by `started_at`, `_id` breaking ties."""
        query = newest_first_query({"agent_id": agent_id}, "started_at", None, None, cursor)
        with database_errors():
            documents, next_cursor = await newest_first_page(self._runs, query, "started_at", limit)
        items = [EvalRunSummary.model_validate(_run_fields(d)) for d in documents]
        return EvalRunPage(items=items, next_cursor=next_cursor)

    async def queue_run(self, run: dict[str, Any]) -> EvalRunDetail:
        """Stores a queued run (agent_configs/eval_runs.py `queued_run`): a run service takes it."""
        with database_errors():
            await self._runs.insert_one(run)
        return EvalRunDetail.model_validate(_run_fields(run))

    async def run(self, run_id: str) -> EvalRunDetail | None:
        with database_errors():
            document = await self._runs.find_one({"_id": run_id})
        return None if document is None else EvalRunDetail.model_validate(_run_fields(document))
