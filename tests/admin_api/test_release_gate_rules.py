"""The release gate's pure parts: which runs count for a version (digest matching), what the
409 says, and the override header's bounds. No services."""

import pytest

from admin_api.problems import ProblemError
from admin_api.release_gate import (
    OVERRIDE_HEADER,
    Admission,
    ReleaseGate,
    Verdict,
    failing_scenarios,
    parse_override,
    runs_query,
)
from agent_configs.models import AgentStatus
from tests.factories import support_config

SUITE = "sha256:suite"


def test_a_run_counts_for_every_version_of_the_same_definition_and_no_other() -> None:
    tested = support_config().model_copy(update={"version": 3})
    query = runs_query(tested, SUITE)
    assert query["status"] == "completed" and query["suite_digest"] == SUITE
    # A resume, a rollback (a new number) or the gate switched off: the same definition.
    same = tested.model_copy(
        update={"version": 7, "status": AgentStatus.PAUSED, "release_gate": True}
    )
    assert runs_query(same, SUITE) == query
    edited = tested.model_copy(update={"greeting": "Hello, this is the billing desk."})
    assert runs_query(edited, SUITE)["definition_digest"] != query["definition_digest"]
    assert runs_query(tested, "sha256:other")["suite_digest"] == "sha256:other"


def test_the_refusal_names_the_failing_scenarios_or_says_how_to_make_a_run() -> None:
    run = {"scenarios": [{"name": "greets", "passed": False}, {"name": "bills", "passed": True}]}
    assert failing_scenarios(run) == ("greets",)
    gate = ReleaseGate.__new__(ReleaseGate)  # refusal reads nothing of the database

    failed = Verdict("support-agent-v1", 3, True, None, "evr_1", ("greets",))
    problem = gate.refusal(failed)
    assert (problem.status, problem.slug) == (409, "release-gate")
    assert problem.extra == {
        "agent_id": "support-agent-v1",
        "version": 3,
        "run_id": "evr_1",
        "failing_scenarios": ["greets"],
    }
    assert "evr_1" in (problem.detail or "") and "greets" in (problem.detail or "")

    never = gate.refusal(Verdict("support-agent-v1", 3, True))
    assert never.extra["run_id"] is None and never.extra["failing_scenarios"] == []
    assert "python -m evals run --agent support-agent-v1 --version 3" in (never.detail or "")
    assert "no eval suite" in (gate.refusal(Verdict("support-agent-v1", 3, False)).detail or "")
    both = gate.routing_refusal([failed, Verdict("sales-agent-v1", 1, False)])
    assert [a["agent_id"] for a in both.extra["agents"]] == ["support-agent-v1", "sales-agent-v1"]


def test_an_override_lets_a_refused_change_through_and_only_then_counts_as_one() -> None:
    refused = Verdict("support-agent-v1", 3, True)
    assert not Admission(refused).allowed
    assert Admission(refused, overridden=True).allowed
    passing = Verdict("support-agent-v1", 3, True, passing_run_id="evr_2")
    assert Admission(passing).allowed and Admission(passing).run_id == "evr_2"
    assert Admission(None).allowed and Admission(None).run_id is None


@pytest.mark.parametrize("value", ["", "   ", "x" * 501])
def test_an_override_reason_blank_or_over_500_characters_is_a_422_naming_the_header(
    value: str,
) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_override(value)
    assert caught.value.status == 422
    assert [(e.field, e.location) for e in caught.value.errors or []] == [
        (OVERRIDE_HEADER, "header")
    ]
    assert parse_override(" hotfix ") == "hotfix" and parse_override("x" * 500) == "x" * 500
