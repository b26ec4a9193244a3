"""The release gate end to end: a gated agent type's edits saved through the admin API become
candidates, `python -m evals run --version N` (its function, in process) runs the suite on each
candidate through the real worker on the scripted endpoint (tests/worker/scripted_llm.py: the
same reply and the simplest valid fields every time), and the activation is refused for the
planted regressions, a greeting edit and a schema edit, naming the failing scenario; a good
candidate's run passes, it activates and the worker serves it; an override is audited.

The type is a copy of the support type of its own (`gate-agent-v1`): the package's modules
share the worker and its database (tests/evals/conftest.py), and a suite is one per type."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from rich.console import Console

from admin_api.auth import KeyRing, Role
from agent_configs.evals import EVAL_RUNS, EVAL_SUITES
from agent_configs.routing.pin import PIN_KEY
from agent_configs.store import ConfigStore
from devstack import Endpoints
from devstack.frontend import RoomClient
from evals.cli import EXIT_FAILED, EXIT_OK, run_evals
from evals.runner import Stack
from tests.admin_api.conftest import admin_settings, running_app
from tests.evals.conftest import stack_of
from tests.worker.conftest import RunningWorker, wait_for_session_end

GATED = "gate-agent-v1"
AGENT = f"/api/v1/agents/{GATED}"
SCENARIO = "greets as support and files the category"
CATEGORIES = ["technical", "billing", "account", "feature_request", "other"]
SUITE: dict[str, Any] = {
    "agent_id": GATED,
    "scenarios": [
        {
            "name": SCENARIO,
            "metadata": {"modality": "text"},
            "greeting": {"reply_contains": ["support"]},
            "turns": [
                {
                    "user": "Hello, a question about my subscription.",
                    "expect": {"fields": {"issue_category": {"one_of": CATEGORIES}}},
                }
            ],
        }
    ],
}
GOOD_GREETING = "Hello, support here. What can I do for you?"


@pytest.fixture(scope="module")
async def gate_api(
    endpoints: Endpoints, worker_database: AsyncDatabase
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The admin API on the worker's database, an admin key of its own (the package's modules
    share the database), and GATED created from the support type with the gate on."""
    keyring = KeyRing(worker_database)
    await keyring.ensure_indexes()
    _, secret = await keyring.create(f"gate-admin-{uuid.uuid4().hex[:6]}", Role.ADMIN)
    admin = {"Authorization": f"Bearer {secret}"}
    support = await ConfigStore(worker_database).get("support-agent-v1")
    # No intents: another module's support session must not hand off to this type.
    definition = support.definition() | {
        "agent_id": GATED,
        "name": "Gated support",
        "intents": [],
        "release_gate": True,
    }
    async with running_app(admin_settings(endpoints, worker_database.name)) as (_, api):
        created = await api.post("/api/v1/agents", json=definition, headers=admin)
        assert created.status_code == 201, created.text  # creating a type is not gated
        stored = await api.put(f"{AGENT}/suite", json=SUITE, headers=admin)
        assert stored.status_code == 200, stored.text
        try:
            yield api, admin
        finally:
            await worker_database[EVAL_SUITES].delete_one({"_id": GATED})
            await api.delete(AGENT, headers=admin)  # archived: routed to by nothing


async def evaluate(
    database: AsyncDatabase, stack: Stack, version: int, tokens_wait_s: float = 0.0
) -> tuple[int, dict[str, Any], str]:
    """`python -m evals run --agent GATED --version N`: exit code, the stored run, the output."""
    console = Console(record=True, width=200)
    code = await run_evals(
        database,
        stack,
        agent=GATED,
        version=version,
        tokens_wait_s=tokens_wait_s,
        console=console,
    )
    stored = await database[EVAL_RUNS].find_one({"agent_id": GATED}, sort=[("started_at", -1)])
    assert stored is not None
    return code, stored, console.export_text()


async def test_planted_regressions_are_refused_by_the_gate_and_a_passing_candidate_goes_live(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    scripted_worker: RunningWorker,
    gate_api: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    api, admin = gate_api
    stack = stack_of(endpoints, scripted_worker)
    live = {"If-Match": '"1"'}

    async def candidate(response: httpx.Response) -> int:
        assert response.status_code == 202, response.text
        assert response.headers["etag"] == '"1"'  # the current version serves on
        return int(response.headers["switchboard-candidate"])

    async def refused(version: int, run: dict[str, Any]) -> dict[str, Any]:
        answered = await api.post(f"{AGENT}/versions/{version}/activate", headers=admin | live)
        assert answered.status_code == 409, answered.text
        problem = answered.json()
        assert problem["type"] == "urn:switchboard:problem:release-gate"
        assert (problem["version"], problem["run_id"]) == (version, run["_id"])
        assert problem["failing_scenarios"] == [SCENARIO] and SCENARIO in problem["detail"]
        return problem

    # A greeting edit that breaks the greeting's reply_contains.
    greeting = await candidate(
        await api.patch(
            AGENT, json={"greeting": "Hello, this is the billing desk."}, headers=admin | live
        )
    )
    code, run, printed = await evaluate(worker_database, stack, greeting)
    assert code == EXIT_FAILED, printed
    assert (run["version"], run["pinned"]) == (greeting, True)
    (failure,) = run["scenarios"][0]["failures"]
    assert failure["expectation"] == "greeting.reply_contains[0]"
    await refused(greeting, run)

    # A schema edit: the category's values renamed, so the field's one_of no longer holds.
    definition = (await api.get(AGENT, headers=admin)).json()
    for field in definition["turn_schema"]["fields"]:
        if field["name"] == "issue_category":
            field["enum"] = ["hardware", "software"]
    schema = await candidate(await api.put(AGENT, json=definition, headers=admin | live))
    code, run, printed = await evaluate(worker_database, stack, schema)
    assert code == EXIT_FAILED, printed
    (failure,) = run["scenarios"][0]["failures"]
    assert failure["expectation"] == "turns[0].fields.issue_category.one_of"
    await refused(schema, run)

    # A good candidate: its run passes, it activates, and the next room gets it.
    good = await candidate(
        await api.patch(AGENT, json={"greeting": GOOD_GREETING}, headers=admin | live)
    )
    code, run, printed = await evaluate(worker_database, stack, good)
    assert code == EXIT_OK, printed
    activated = await api.post(f"{AGENT}/versions/{good}/activate", headers=admin | live)
    assert activated.status_code == 200, activated.text
    assert activated.json()["version"] == good and activated.headers["etag"] == f'"{good}"'
    event = await worker_database["events"].find_one({"type": "agent.activated", "agent_id": GATED})
    assert event is not None and event["details"]["run_id"] == run["_id"]

    client = RoomClient(
        endpoints.livekit_url,
        endpoints.livekit_api_key,
        endpoints.livekit_api_secret,
        scripted_worker.agent_name,
    )
    try:  # pinned to the type, not to a version: the worker serves its current one
        await client.join({PIN_KEY: {"agent_id": GATED}, "modality": "text"})
        assert await client.next_transcript(0, timeout=30) == GOOD_GREETING
    finally:
        await client.leave()
    record = await wait_for_session_end(worker_database, client.room_name, timeout=30)
    assert record["agent_version"] == good

    # An override lets the regressed greeting through, audited with its reason.
    reason = "the billing desk takes these calls this week"
    overridden = await api.patch(
        AGENT,
        json={"greeting": "Hello, this is the billing desk."},
        headers=admin | {"If-Match": f'"{good}"', "Switchboard-Gate-Override": reason},
    )
    assert overridden.status_code == 200, overridden.text
    audit = await worker_database["events"].find_one(
        {"type": "agent.gate_overridden", "agent_id": GATED}
    )
    assert audit is not None
    assert audit["details"] == {"reason": reason, "action": "save"}
    assert audit["version"] == overridden.json()["version"]
