"""Eval suites (one per agent type) and the runs `python -m evals run` stored.

A suite is written whole (PUT), validated by agent_configs/evals.py's `Suite`, the model the
runner and the seeder use, so a suite the API accepts is one the runner can run. It is not
versioned (a suite change activates nothing: the runner reads it when it runs) but it is
audited (`suite.updated`, with the suite's digest): the release gate counts only runs of the
suite as stored now, so a suite weakened to let a version through is on the record as an
override is.
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from admin_api.deps import AdminKey, ReaderKey, ServicesDep, Store
from admin_api.eval_records import EvalRecords, EvalRunDetail, EvalRunPage, unstorable
from admin_api.events import EventType
from admin_api.problems import (
    FieldProblem,
    ProblemError,
    invalid_request,
    problem_responses,
)
from admin_api.routes import API_V1
from admin_api.routes.agents import AgentId
from admin_api.routes.sessions import cursor_problem
from admin_api.storage import InvalidCursor
from agent_configs.database import bson_now
from agent_configs.eval_runs import queued_run
from agent_configs.evals import Suite
from agent_configs.fingerprints import suite_digest

router = APIRouter(prefix=API_V1, tags=["evals"])


async def get_eval_records(services: ServicesDep) -> EvalRecords:
    return EvalRecords(services.database)


Evals = Annotated[EvalRecords, Depends(get_eval_records)]
READ_PROBLEMS = problem_responses(401, 403, 404, 422, 503)

SUITE_EXAMPLE = {
    "agent_id": "support-agent-v1",
    "scenarios": [
        {
            "name": "greets as support and answers",
            "metadata": {"purpose": "support", "modality": "text"},
            "routed_to": "support-agent-v1",
            "turns": [
                {
                    "user": "My invoice is wrong.",
                    "expect": {"fields": {"issue_category": {"one_of": ["billing", "account"]}}},
                }
            ],
        }
    ],
}


@router.get(
    "/agents/{agent_id}/suite",
    responses=READ_PROBLEMS,
    response_model_exclude_unset=True,
)
async def get_suite(caller: ReaderKey, agent_id: AgentId, evals: Evals) -> Suite:
    """The type's stored suite as written: what it did not set is left out (a default filled in
    here would be sent back by a client's PUT as a check, e.g. `equals: null`)."""
    suite = await evals.suite(agent_id)
    if suite is None:
        raise ProblemError(
            404, "suite-not-found", "Eval suite not found", f"agent type '{agent_id}' has no suite"
        )
    return suite


@router.put(
    "/agents/{agent_id}/suite",
    responses=problem_responses(400, 401, 403, 404, 413, 422, 503),
    response_model_exclude_unset=True,
)
async def put_suite(
    caller: AdminKey,
    agent_id: AgentId,
    store: Store,
    evals: Evals,
    services: ServicesDep,
    suite: Annotated[Suite, Body(openapi_examples={"suite": {"value": SUITE_EXAMPLE}})],
) -> Suite:
    """Store the type's suite, replacing the one it had. 422 names each bad field
    (`scenarios.0.turns.0.expect.reply_contain`); 404 when the agent type does not exist."""
    if suite.agent_id != agent_id:
        message = f"must be '{agent_id}', as in the path"
        raise invalid_request([FieldProblem(field="agent_id", message=message)])
    problems = unstorable(suite.document())
    if problems:
        raise invalid_request([FieldProblem(field=f, message=m) for f, m in problems])
    await store.get(agent_id)  # AgentNotFound: 404
    stored = await evals.store_suite(suite)
    await services.events.record(
        EventType.SUITE_UPDATED,
        caller.name,
        agent_id=agent_id,
        details={"scenarios": len(suite.scenarios), "suite_digest": suite_digest(suite)},
    )
    return stored


@router.get("/agents/{agent_id}/eval-runs", responses=READ_PROBLEMS)
async def list_eval_runs(
    caller: ReaderKey,
    agent_id: AgentId,
    store: Store,
    evals: Evals,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> EvalRunPage:
    """The type's runs, newest first: each scenario's pass rate, time and tokens, no failures
    (GET /eval-runs/{run_id} has them). 404 when the agent type does not exist."""
    await store.get(agent_id)
    try:
        return await evals.page(agent_id, limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise cursor_problem(exc) from None


class EvalRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        default=None,
        ge=1,
        le=10**9,
        description="The stored version to run, pinned (a candidate too); null: the current "
        "version, with routing deciding as for a caller.",
    )
    repeat: int | None = Field(
        default=None, ge=1, le=50, description="Attempts per scenario (null: each its own)."
    )


@router.post(
    "/agents/{agent_id}/eval-runs",
    status_code=202,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def request_eval_run(
    caller: AdminKey,
    agent_id: AgentId,
    store: Store,
    evals: Evals,
    response: Response,
    request: Annotated[
        EvalRunRequest,
        Body(openapi_examples={"pinned": {"value": {"version": 3, "repeat": 2}}}),
    ] = EvalRunRequest(),  # no body: the current version, each scenario its own repeat
) -> EvalRunDetail:
    """Queue a run of the type's suite for the run service (`python -m evals serve`): 202 with
    the queued run and its Location; GET it for its status and progress. 404 for an unknown
    type or version; 409 when the type has no suite."""
    config = await (
        store.get_version(agent_id, request.version)
        if request.version is not None
        else store.get(agent_id)
    )  # AgentNotFound: 404, naming the version
    suite = await evals.suite(agent_id)
    if suite is None:
        raise ProblemError(
            409,
            "suite-not-found",
            "Eval suite not found",
            f"agent type '{agent_id}' has no suite to run: PUT /api/v1/agents/{agent_id}/suite",
        )
    run = await evals.queue_run(
        queued_run(
            config=config,
            suite=suite,
            pinned=request.version is not None,
            repeat=request.repeat,
            requested_by=caller.name,
            at=bson_now(),
        )
    )
    response.headers["Location"] = f"{API_V1}/eval-runs/{run.run_id}"
    return run


@router.get("/eval-runs/{run_id}", responses=READ_PROBLEMS)
async def get_eval_run(
    caller: ReaderKey,
    run_id: Annotated[str, Path(min_length=1, max_length=256)],
    evals: Evals,
) -> EvalRunDetail:
    """One run whole: the models, each scenario's rooms and skipped expectations, and each
    failed expectation with its attempt, turn, detail and the transcript up to that turn."""
    run = await evals.run(run_id)
    if run is None:
        raise ProblemError(404, "eval-run-not-found", "Eval run not found", f"no run '{run_id}'")
    return run
