"""The release gate through the admin API on the real FerretDB: a gated type's save without a
passing eval run is filed as a candidate (202), its activation, a resume and a routing change
sending it more traffic are 409 `release-gate` problems naming the failing scenarios, a
passing run lets each through, and an override is audited. The runs are stored as the runner
stores them (status, digests); tests/evals/test_release_gate.py makes them through the stack."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import OUTBOX
from agent_configs.evals import EVAL_RUNS, Suite
from agent_configs.fingerprints import definition_digest, suite_digest
from agent_configs.models import AgentConfig
from tests.admin_api.conftest import Keys

pytestmark = pytest.mark.usefixtures("seeded")

SUPPORT = "support-agent-v1"
AGENT = f"/api/v1/agents/{SUPPORT}"
GATE = "urn:switchboard:problem:release-gate"
OVERRIDE = "Switchboard-Gate-Override"
SUITE: dict[str, Any] = {
    "agent_id": SUPPORT,
    "scenarios": [
        {
            "name": "greets as support",
            "greeting": {"reply_contains": ["support"]},
            "turns": [{"user": "Hello"}],
        },
        {
            "name": "files the category",
            "turns": [
                {
                    "user": "My invoice is wrong.",
                    "expect": {"fields": {"issue_category": {"present": True}}},
                }
            ],
        },
    ],
}


def if_match(keys: Keys, version: int, **headers: str) -> dict[str, str]:
    return keys.header("admin") | {"If-Match": f'"{version}"'} | headers


async def store_run(
    database: AsyncDatabase,
    config: dict[str, Any],
    failing: tuple[str, ...] = (),
    suite: dict[str, Any] = SUITE,
) -> str:
    """A completed run of SUITE on `config` (an API answer), as the runner stores it."""
    tested = AgentConfig.model_validate(config)
    run_id = f"evr_{uuid4().hex}"
    await database[EVAL_RUNS].insert_one(
        {
            "_id": run_id,
            "agent_id": tested.agent_id,
            "version": tested.version,
            "pinned": True,
            "status": "completed",
            "definition_digest": definition_digest(tested),
            "suite_digest": suite_digest(Suite.model_validate(suite)),
            "passed": not failing,
            "scenarios": [
                {"name": s["name"], "passed": s["name"] not in failing, "pass_rate": 1.0}
                for s in SUITE["scenarios"]
            ],
            "started_at": datetime.now(UTC),
        }
    )
    return run_id


async def gated(api: httpx.AsyncClient, keys: Keys) -> int:
    """SUITE stored and the gate switched on (not gated yet: 200); the version it made."""
    assert (await api.put(f"{AGENT}/suite", json=SUITE, headers=keys.header("admin"))).is_success
    on = await api.patch(AGENT, json={"release_gate": True}, headers=if_match(keys, 1))
    assert on.status_code == 200, on.text
    return int(on.json()["version"])


async def outbox_of(database: AsyncDatabase, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """The outbox's events of `kind` once it holds `count` (written off the request)."""
    deadline = time.monotonic() + 10
    while True:
        found = await database[OUTBOX].find({"type": kind}).sort("seq", 1).to_list(None)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_a_gated_save_is_a_candidate_until_a_run_on_it_passes_and_its_activation_is_audited(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    indexes = await database[EVAL_RUNS].index_information()
    looked_up_by = ["agent_id", "definition_digest", "suite_digest", "status", "passed"]
    assert [[k for k, _ in i["key"]] for i in indexes.values()].count(looked_up_by) == 1
    live = await gated(api, keys)
    before = (await api.get(AGENT, headers=keys.header("viewer"))).json()["greeting"]
    edit = {"greeting": "Hello, this is the billing desk."}
    filed = await api.patch(AGENT, json=edit, headers=if_match(keys, live))
    assert filed.status_code == 202, filed.text
    candidate = filed.json()["version"]
    assert candidate == live + 1 and filed.json()["greeting"] == edit["greeting"]
    assert filed.headers["switchboard-candidate"] == str(candidate)
    assert filed.headers["etag"] == f'"{live}"'
    current = (await api.get(AGENT, headers=keys.header("viewer"))).json()
    assert (current["version"], current["greeting"]) == (live, before)
    versions = (await api.get(f"{AGENT}/versions", headers=keys.header("viewer"))).json()
    assert [(v["version"], v["candidate"]) for v in versions["items"][:2]] == [
        (candidate, True),
        (live, False),
    ]

    activate = f"{AGENT}/versions/{candidate}/activate"
    never = await api.post(activate, headers=keys.header("admin"))
    assert never.status_code == 409, never.text
    assert never.json()["type"] == GATE
    assert (never.json()["run_id"], never.json()["failing_scenarios"]) == (None, [])
    assert f"python -m evals run --agent {SUPPORT} --version {candidate}" in never.json()["detail"]

    failed_run = await store_run(database, filed.json(), failing=("greets as support",))
    refused = await api.post(activate, headers=keys.header("admin"))
    assert refused.status_code == 409
    problem = refused.json()
    assert {k: problem[k] for k in ("agent_id", "version", "run_id", "failing_scenarios")} == {
        "agent_id": SUPPORT,
        "version": candidate,
        "run_id": failed_run,
        "failing_scenarios": ["greets as support"],
    }
    assert "greets as support" in problem["detail"]
    # A passing run of another suite (or of the suite before an edit) does not count.
    other = SUITE | {"scenarios": SUITE["scenarios"][:1]}
    await store_run(database, filed.json(), suite=other)
    assert (await api.post(activate, headers=keys.header("admin"))).status_code == 409

    passing_run = await store_run(database, filed.json())
    activated = await api.post(activate, headers=if_match(keys, live))
    assert activated.status_code == 200, activated.text
    assert (
        activated.json()["version"] == candidate and activated.headers["etag"] == f'"{candidate}"'
    )
    assert (await api.get(AGENT, headers=keys.header("viewer"))).json()["greeting"] == edit[
        "greeting"
    ]
    versions = (await api.get(f"{AGENT}/versions", headers=keys.header("viewer"))).json()
    assert versions["items"][0] == versions["items"][0] | {"version": candidate, "candidate": False}
    (event,) = await outbox_of(database, "agent.activated")
    assert event["data"] | {"run_id": passing_run} == event["data"]
    assert (event["data"]["version"], event["data"]["activated_version"]) == (candidate, candidate)
    audit = await database["events"].find_one({"type": "agent.activated"})
    assert audit is not None and audit["details"]["run_id"] == passing_run

    # A save of a tested definition goes live at once; a rollback to an untested one (version
    # 1, the greeting before) is a candidate again.
    same = await api.patch(AGENT, json=edit, headers=if_match(keys, candidate))
    assert same.status_code == 200 and same.json()["version"] == candidate + 1
    back = await api.post(f"{AGENT}/rollback", json={"version": 1}, headers=keys.header("admin"))
    assert back.status_code == 202, back.text
    assert (back.json()["version"], back.json()["greeting"]) == (candidate + 2, before)


async def test_an_override_lets_a_gated_change_through_and_is_audited_with_its_reason(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    live = await gated(api, keys)
    blank = await api.patch(
        AGENT, json={"greeting": "Hi."}, headers=if_match(keys, live, **{OVERRIDE: " "})
    )
    assert blank.status_code == 422
    assert [(e["field"], e["location"]) for e in blank.json()["errors"]] == [(OVERRIDE, "header")]

    reason = "hotfix: the greeting named a closed desk"
    saved = await api.patch(
        AGENT,
        json={"greeting": "Hi, support here."},
        headers=if_match(keys, live, **{OVERRIDE: reason}),
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == live + 1
    (event,) = await outbox_of(database, "agent.gate_overridden")
    assert event["data"] == {
        "agent_id": SUPPORT,
        "version": live + 1,
        "reason": reason,
        "actor": "test-admin",
        "action": "save",
    }
    audit = await database["events"].find_one({"type": "agent.gate_overridden"})
    assert audit is not None and audit["details"] == {"reason": reason, "action": "save"}

    paused = await api.post(f"{AGENT}/pause", headers=keys.header("admin"))  # not gated
    assert paused.status_code == 200
    resume = await api.post(f"{AGENT}/resume", headers=keys.header("admin"))
    assert resume.status_code == 409 and resume.json()["version"] == live + 2
    await store_run(database, paused.json())  # a pause files no new definition: its run counts
    resumed = await api.post(f"{AGENT}/resume", headers=keys.header("admin"))
    assert resumed.status_code == 200, resumed.text
    # Only a change the override let through is recorded as overridden.
    assert len(await outbox_of(database, "agent.gate_overridden")) == 1


async def test_a_routing_change_sending_a_gated_type_more_traffic_needs_a_passing_run(
    api: httpx.AsyncClient, keys: Keys, database: AsyncDatabase
) -> None:
    live = await gated(api, keys)
    rules = (await api.get("/api/v1/routing", headers=keys.header("viewer"))).json()
    split = next(e for e in rules["chain"] if e["strategy"] == "ab_split")
    split |= {"enabled": True, "params": {"salt": "", "variants": [{"agent_id": SUPPORT}]}}
    refused = await api.put("/api/v1/routing", json=rules, headers=if_match(keys, 0))
    assert refused.status_code == 409, refused.text
    assert refused.json()["agents"] == [
        {"agent_id": SUPPORT, "version": live, "run_id": None, "failing_scenarios": []}
    ]
    # Sending an ungated type more traffic is not the gate's business.
    split["params"]["variants"] = [{"agent_id": "sales-agent-v1"}]
    assert (await api.put("/api/v1/routing", json=rules, headers=if_match(keys, 0))).is_success

    split["params"]["variants"] = [{"agent_id": "sales-agent-v1"}, {"agent_id": SUPPORT}]
    overridden = await api.put(
        "/api/v1/routing", json=rules, headers=if_match(keys, 1, **{OVERRIDE: "A/B starts today"})
    )
    assert overridden.status_code == 200, overridden.text
    (event,) = await outbox_of(database, "agent.gate_overridden")
    assert (event["data"]["action"], event["data"]["version"]) == ("routing", live)
