"""Eval suites and runs through the admin API, on the real FerretDB: suites written with PUT and
read back, runs stored as the runner stores them (evals/results.py) and listed newest first."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.evals import EVAL_RUNS, Scenario, Suite
from agent_configs.fingerprints import definition_digest, suite_digest
from agent_configs.store import ConfigStore
from evals.expectations import ObservedTurn, Outcome, Status
from evals.results import run_document
from evals.runner import Attempt, ScenarioResult
from tests.admin_api.conftest import Keys

pytestmark = pytest.mark.usefixtures("seeded")

SUPPORT = "support-agent-v1"
SUITE_URL = f"/api/v1/agents/{SUPPORT}/suite"
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def suite(**changes: Any) -> dict[str, Any]:
    return {
        "agent_id": SUPPORT,
        "scenarios": [
            {
                "name": "billing question",
                "metadata": {"purpose": "support"},
                "turns": [
                    {
                        "user": "My invoice is wrong.",
                        "expect": {
                            "fields": {
                                "issue_category": {"one_of": ["billing"]},
                                "escalation_needed": {"equals": None},
                            }
                        },
                    }
                ],
            }
        ],
    } | changes


async def test_a_suite_put_is_read_back_as_written_explicit_null_included(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await api.get(SUITE_URL, headers=keys.header("viewer"))).status_code == 404
    put = await api.put(SUITE_URL, json=suite(), headers=keys.header("admin"))
    assert put.status_code == 200, put.text
    assert put.json() == suite()
    read = await api.get(SUITE_URL, headers=keys.header("viewer"))
    assert read.status_code == 200
    assert read.json() == suite()  # no defaults filled in: `equals: null` only where written
    # Audited: the release gate counts runs of the suite as stored now, so who changed it
    # and into what (its digest) is on the record.
    trail = await api.get(
        "/api/v1/events",
        params={"type": "suite.updated", "agent_id": SUPPORT},
        headers=keys.header("viewer"),
    )
    (event,) = trail.json()["items"]
    assert event["actor"] == "test-admin" and event["version"] is None
    assert event["details"] == {
        "scenarios": 1,
        "suite_digest": suite_digest(Suite.model_validate(suite())),
    }


async def test_a_bad_suite_is_422_naming_the_field_and_stores_nothing(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    bad = suite()
    bad["scenarios"][0]["turns"][0]["expect"]["reply_contain"] = ["invoice"]
    answered = await api.put(SUITE_URL, json=bad, headers=keys.header("admin"))
    assert answered.status_code == 422
    fields = [e["field"] for e in answered.json()["errors"]]
    assert fields == ["scenarios.0.turns.0.expect.reply_contain"]
    other = await api.put(
        SUITE_URL, json=suite(agent_id="sales-agent-v1"), headers=keys.header("admin")
    )
    assert other.status_code == 422
    assert [e["field"] for e in other.json()["errors"]] == ["agent_id"]
    unstorable = suite()
    unstorable["scenarios"][0]["metadata"] = {"a.b": 1, "nested": [[1]]}
    refused = await api.put(SUITE_URL, json=unstorable, headers=keys.header("admin"))
    assert refused.status_code == 422  # what FerretDB would refuse, named rather than a 500
    assert [e["field"] for e in refused.json()["errors"]] == [
        "scenarios.0.metadata.a.b",
        "scenarios.0.metadata.nested.0",
    ]
    assert (await api.get(SUITE_URL, headers=keys.header("admin"))).status_code == 404


async def test_a_suite_for_an_unknown_agent_type_is_404_and_a_viewer_may_not_put_one(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    unknown = await api.put(
        "/api/v1/agents/no-such-agent/suite",
        json=suite(agent_id="no-such-agent"),
        headers=keys.header("admin"),
    )
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:switchboard:problem:agent-not-found"
    refused = await api.put(SUITE_URL, json=suite(), headers=keys.header("viewer"))
    assert refused.status_code == 403


def result(passed: bool) -> ScenarioResult:
    """A scenario's result as the runner builds it: one attempt, failed on its field when not
    `passed`, with what the room showed."""
    scenario = Scenario.model_validate(suite()["scenarios"][0])
    status: Status = "passed" if passed else "failed"
    outcome = Outcome("fields.issue_category.one_of", status, "wanted one of ['billing']")
    turn = ObservedTurn(user="My invoice is wrong.", payload={}, reply="Sorry about that.")
    attempt = Attempt(room="eval-room", outcomes=[(0, outcome)], turns=[turn], greeting="Hi!")
    return ScenarioResult(scenario=scenario, attempts=[attempt])


async def test_runs_are_listed_newest_first_in_pages_and_one_run_shows_its_failures(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    config = await ConfigStore(database).get(SUPPORT)
    runs = [
        run_document(
            agent_id=SUPPORT,
            config=config,
            suite=Suite.model_validate(suite()),
            pinned=False,
            results=[result(passed=hour != 1)],
            started_at=T0 + timedelta(hours=hour),
            wall_time_s=4.2,
            tokens={"input": 100, "output": 20, "sessions_counted": 1, "sessions": 1},
        )
        for hour in range(3)
    ]
    await database[EVAL_RUNS].insert_many(runs)
    url = f"/api/v1/agents/{SUPPORT}/eval-runs"
    first = (await api.get(url, params={"limit": 2}, headers=keys.header("viewer"))).json()
    assert [r["run_id"] for r in first["items"]] == [runs[2]["_id"], runs[1]["_id"]]
    listed = first["items"][1]
    assert listed["passed"] is False and listed["version"] == config.version
    assert listed["scenarios"] == [
        {"name": "billing question", "pass_rate": 0.0, "required_pass_rate": 1.0, "passed": False}
    ]
    assert listed["tokens"]["input"] == 100 and listed["wall_time_s"] == 4.2
    rest = await api.get(
        url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=keys.header("viewer")
    )
    assert [r["run_id"] for r in rest.json()["items"]] == [runs[0]["_id"]]
    assert rest.json()["next_cursor"] is None

    detail = await api.get(f"/api/v1/eval-runs/{runs[1]['_id']}", headers=keys.header("viewer"))
    assert detail.status_code == 200
    failure = detail.json()["scenarios"][0]["failures"][0]
    assert failure["expectation"] == "turns[0].fields.issue_category.one_of"
    assert failure["transcript"] == [
        {"role": "agent", "text": "Hi!"},
        {"role": "user", "text": "My invoice is wrong."},
        {"role": "agent", "text": "Sorry about that."},
    ]
    assert detail.json()["models"]["llm"][0] == f"{config.llm.provider}/{config.llm.model}"
    missing = await api.get("/api/v1/eval-runs/evr_none", headers=keys.header("viewer"))
    assert missing.status_code == 404
    no_type = await api.get("/api/v1/agents/no-such-agent/eval-runs", headers=keys.header("viewer"))
    assert no_type.json()["type"] == "urn:switchboard:problem:agent-not-found"
    bad_cursor = await api.get(url, params={"cursor": "nope"}, headers=keys.header("viewer"))
    assert [e["field"] for e in bad_cursor.json()["errors"]] == ["cursor"]


async def test_a_run_stored_before_runs_had_a_status_reads_as_completed(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    config = await ConfigStore(database).get(SUPPORT)
    old = run_document(
        agent_id=SUPPORT,
        config=config,
        suite=Suite.model_validate(suite()),
        pinned=False,
        results=[result(passed=True)],
        started_at=T0,
        wall_time_s=1.0,
        tokens=None,
    )
    for added in ("status", "definition_digest", "suite_digest", "progress", "requested_by"):
        del old[added]
    await database[EVAL_RUNS].insert_one(old)
    read = (await api.get(f"/api/v1/eval-runs/{old['_id']}", headers=keys.header("viewer"))).json()
    assert (read["status"], read["passed"], read["definition_digest"]) == ("completed", True, None)
    listed = await api.get(f"/api/v1/agents/{SUPPORT}/eval-runs", headers=keys.header("viewer"))
    assert listed.json()["items"][0]["status"] == "completed"


async def test_a_run_is_queued_with_its_version_digests_and_progress_and_bad_requests_name_the_field(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    url = f"/api/v1/agents/{SUPPORT}/eval-runs"
    no_suite = await api.post(url, json={}, headers=keys.header("admin"))
    assert no_suite.status_code == 409, no_suite.text
    assert no_suite.json()["type"] == "urn:switchboard:problem:suite-not-found"
    written = suite()
    written["scenarios"][0]["repeat"] = 3
    assert (await api.put(SUITE_URL, json=written, headers=keys.header("admin"))).status_code == 200

    queued = await api.post(url, json={"version": 1, "repeat": 2}, headers=keys.header("admin"))
    assert queued.status_code == 202, queued.text
    run = queued.json()
    assert queued.headers["location"] == f"/api/v1/eval-runs/{run['run_id']}"
    config = await ConfigStore(database).get_version(SUPPORT, 1)
    assert run["status"] == "queued" and run["error"] is None and run["scenarios"] == []
    assert (run["version"], run["pinned"], run["requested_by"]) == (1, True, "test-admin")
    assert run["definition_digest"] == definition_digest(config)
    assert run["suite_digest"] == suite_digest(Suite.model_validate(written))
    assert run["progress"] == {"attempts_done": 0, "attempts_total": 2, "scenario": None}
    read = await api.get(queued.headers["location"], headers=keys.header("viewer"))
    assert read.json() == run
    listed = await api.get(url, headers=keys.header("viewer"))
    assert listed.json()["items"][0]["status"] == "queued"
    # No body: the current version, unpinned, each scenario its own repeat.
    current = await api.post(url, headers=keys.header("admin"))
    assert current.status_code == 202, current.text
    assert (current.json()["pinned"], current.json()["progress"]["attempts_total"]) == (False, 3)

    for body, field in [
        ({"version": 0}, "version"),
        ({"version": 2**63}, "version"),  # beyond what the database stores: not a 500
        ({"repeat": 51}, "repeat"),
        ({"version": "three"}, "version"),
        ({"repeats": 2}, "repeats"),
    ]:
        refused = await api.post(url, json=body, headers=keys.header("admin"))
        assert refused.status_code == 422, (body, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == [field], refused.json()
    unknown_version = await api.post(url, json={"version": 99}, headers=keys.header("admin"))
    assert unknown_version.status_code == 404
    assert "version 99" in unknown_version.json()["detail"]
    unknown_type = await api.post(
        "/api/v1/agents/no-such-agent/eval-runs", json={}, headers=keys.header("admin")
    )
    assert unknown_type.json()["type"] == "urn:switchboard:problem:agent-not-found"
    assert (await api.post(url, json={}, headers=keys.header("viewer"))).status_code == 403
    assert await database[EVAL_RUNS].count_documents({"status": "queued"}) == 2
