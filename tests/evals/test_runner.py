"""`python -m evals run`'s work against the real stack: a LiveKit room per scenario, the worker
on the scripted endpoint (tests/worker/scripted_llm.py: the same reply every time, so reply
expectations are deterministic), the agent type's stored version."""

from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from rich.console import Console

from agent_configs.cloudevents import OUTBOX
from agent_configs.evals import EVAL_RUNS, EVAL_SUITES, Suite
from agent_configs.fingerprints import definition_digest, suite_digest
from agent_configs.store import ConfigStore
from devstack import Endpoints
from evals.cli import EXIT_FAILED, EXIT_OK, run_evals
from evals.runner import Stack
from tests.evals.conftest import stack_of
from tests.worker.conftest import RunningWorker, agent_changed
from tests.worker.scripted_llm import REPLY

SUPPORT = "support-agent-v1"
SUITE = Suite.model_validate(
    {
        "agent_id": SUPPORT,
        "scenarios": [
            {
                "name": "greets as support and answers",
                "metadata": {"purpose": "support", "modality": "text"},
                "routed_to": SUPPORT,
                "greeting": {"reply_contains": ["support"]},
                "turns": [
                    {
                        "user": "Hello, a question about my subscription.",
                        "expect": {
                            "agent": SUPPORT,
                            "reply_contains": [REPLY.split()[0]],
                            "fields": {
                                "issue_category": {
                                    "one_of": [
                                        "technical",
                                        "billing",
                                        "account",
                                        "feature_request",
                                        "other",
                                    ]
                                }
                            },
                            "rubric": "Polite, and asks what the subscription question is.",
                        },
                    }
                ],
            }
        ],
    }
)


async def run(
    database: AsyncDatabase,
    stack: Stack,
    junit: Path,
    version: int | None = None,
    tokens_wait_s: float = 0.0,
) -> tuple[int, dict[str, Any], str]:
    """`tokens_wait_s` 0: the run does not wait for its sessions' end records (tokens)."""
    console = Console(record=True, width=200)
    code = await run_evals(
        database,
        stack,
        agent=SUPPORT,
        version=version,
        junit=junit,
        tokens_wait_s=tokens_wait_s,
        console=console,
    )
    stored = await database[EVAL_RUNS].find_one(sort=[("started_at", -1)])
    assert stored is not None
    return code, stored, console.export_text()


async def test_a_suite_passes_and_planted_greeting_and_schema_edits_fail_it_naming_the_expectation(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    scripted_worker: RunningWorker,
    tmp_path: Path,
) -> None:
    stack = stack_of(endpoints, scripted_worker)
    await worker_database[EVAL_SUITES].insert_one(SUITE.document())
    good = (await ConfigStore(worker_database).get(SUPPORT)).version
    junit = tmp_path / "junit.xml"

    code, stored, printed = await run(worker_database, stack, junit, tokens_wait_s=10)
    assert code == EXIT_OK, printed
    # The scripted endpoint reports 10 + 10 tokens a request (the session's end record's cost).
    assert stored["tokens"]["sessions_counted"] == 1 and stored["tokens"]["input"] > 0
    (scenario,) = stored["scenarios"]
    # The session is marked as the run's, so live statistics (A/B analytics) leave it out.
    session = await worker_database["sessions"].find_one({"room": scenario["rooms"][0]})
    assert session is not None and session["eval_run_id"] == stored["_id"]
    assert (stored["passed"], stored["version"], scenario["pass_rate"]) == (True, good, 1.0)
    # No judge model: the rubric is reported skipped, and neither passes nor fails the run.
    assert scenario["skipped"] == ["turns[0].rubric"]
    assert stored["models"]["llm"] and stored["wall_time_s"] > 0
    # Nor is one recorded; the suite has no simulated caller, so none is recorded either.
    assert (stored["models"]["judge"], stored["models"]["caller"]) == (None, None)
    # What the release gate matches a run on, stored by the CLI as by the run service.
    config = await ConfigStore(worker_database).get(SUPPORT)
    assert (stored["status"], stored["error"], stored["requested_by"]) == ("completed", None, None)
    assert stored["definition_digest"] == definition_digest(config)
    assert stored["suite_digest"] == suite_digest(SUITE)
    assert stored["progress"] == {"attempts_done": 1, "attempts_total": 1, "scenario": None}
    event = await worker_database[OUTBOX].find_one({"subject": stored["_id"]})
    assert event is not None and event["type"] == "eval.completed"
    assert event["data"]["passed"] is True and event["agent_id"] == SUPPORT
    assert 'failures="0"' in junit.read_text()

    async with agent_changed(worker_database, SUPPORT, greeting="Hello, this is the billing desk."):
        code, stored, printed = await run(worker_database, stack, junit)
        assert code == EXIT_FAILED
        assert stored["version"] == good + 1 and stored["passed"] is False
        (failure,) = stored["scenarios"][0]["failures"]
        assert failure["expectation"] == "greeting.reply_contains[0]"
        assert failure["transcript"][0] == {
            "role": "agent",
            "text": "Hello, this is the billing desk.",
        }
        assert "greeting.reply_contains[0]" in printed and "FAIL" in printed
        assert "greeting.reply_contains[0]" in junit.read_text()

        # The version that passed, pinned while the regressed one is current: it still passes.
        code, stored, printed = await run(worker_database, stack, junit, version=good)
        assert code == EXIT_OK, printed
        assert (stored["version"], stored["pinned"]) == (good, True)

    # A schema edit: the category's values renamed, so the field's one_of no longer holds.
    schema = (await ConfigStore(worker_database).get(SUPPORT)).turn_schema
    renamed = [
        f.model_copy(update={"enum": ["hardware", "software"]}) if f.name == "issue_category" else f
        for f in schema.fields
    ]
    edited = schema.model_copy(update={"fields": renamed})
    async with agent_changed(worker_database, SUPPORT, turn_schema=edited):
        # Waits for its session's end (as the command does by default): the worker stopped
        # at the module's end while a session was still ending took 33 s to drain.
        code, stored, printed = await run(worker_database, stack, junit, tokens_wait_s=10)
        assert code == EXIT_FAILED, printed
        (failure,) = stored["scenarios"][0]["failures"]
        assert failure["expectation"] == "turns[0].fields.issue_category.one_of"
        assert failure["transcript"][-2:] == [
            {"role": "user", "text": "Hello, a question about my subscription."},
            {"role": "agent", "text": REPLY},
        ]
