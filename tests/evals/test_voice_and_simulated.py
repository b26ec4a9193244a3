"""A voice scenario, a judge and a session's end, and a simulated caller, through the real path:
the package's scripted worker (tests/evals/conftest.py), LiveKit rooms, Whisper hearing
espeak-ng speech, the embedded model playing the caller."""

import json

from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.evals import Suite
from agent_configs.tools import EndSessionTool
from devstack import Endpoints
from evals.caller import SimulatedCaller
from evals.chat import ChatModel
from evals.execution import run_and_store, version_under_test
from evals.judge import Judge
from evals.runner import run_suite
from tests.evals.conftest import stack_of
from tests.worker.conftest import RunningWorker, agent_changed
from tests.worker.scripted_llm import REPLY, ScriptedLLM

SUPPORT = "support-agent-v1"


async def test_a_simulated_caller_played_by_the_embedded_model_talks_for_its_turns(
    endpoints: Endpoints, scripted_worker: RunningWorker
) -> None:
    """Structure only (the tiny model's words are never judged): the caller's lines are
    played as turns, each checked against the turn's expectations and named by its line."""
    assert endpoints.local_llm_url, "the local model stack is not installed: run `make test`"
    model = endpoints.local_llm_model or "smollm2-135m-instruct"
    caller = SimulatedCaller(ChatModel("caller", endpoints.local_llm_url, model, max_tokens=40))
    suite = Suite.model_validate(
        {
            "agent_id": SUPPORT,
            "scenarios": [
                {
                    "name": "simulated",
                    "metadata": {"purpose": "support", "modality": "text"},
                    "turns": [
                        {
                            "simulate": {
                                "persona": "A customer billed twice this month.",
                                "goal": "Get the second charge refunded.",
                                "turns": 2,
                            },
                            "expect": {
                                "agent": SUPPORT,
                                "fields": {"issue_category": {"present": True}},
                                "reply_not_empty": True,
                            },
                        }
                    ],
                }
            ],
        }
    )
    stack = stack_of(endpoints, scripted_worker, caller=caller)
    ((attempt,),) = [r.attempts for r in await run_suite(suite, stack, None)]
    assert attempt.error is None and attempt.passed, attempt.failures()
    assert 1 <= len(attempt.turns) <= 2 and all(t.user.strip() for t in attempt.turns)
    assert [t.path for t in attempt.turns] == [
        f"turns[0].simulate[{i}]" for i in range(len(attempt.turns))
    ]
    # Each line's three expectations were checked.
    assert len(attempt.outcomes) == 3 * len(attempt.turns)
    assert stack.helper_models(suite) == {"judge": None, "caller": caller.model.name}


async def test_a_voice_scenario_is_heard_through_stt_judged_on_it_and_ends_with_its_reason(
    endpoints: Endpoints,
    worker_database: AsyncDatabase,
    scripted_worker: RunningWorker,
    module_llm: ScriptedLLM,
) -> None:
    """The line is spoken (espeak-ng) into the room and the agent's Whisper hears it; the judge
    (a scripted endpoint of its own) reads what was heard; the scripted model ends the session
    (end_session) and the end record's reason is checked."""
    judge_endpoint = ScriptedLLM(reply=json.dumps({"pass": True, "reason": "Polite enough."}))
    await judge_endpoint.start()
    judge = Judge(ChatModel("judge", judge_endpoint.url, "judge-model"))
    suite = Suite.model_validate(
        {
            "agent_id": SUPPORT,
            "scenarios": [
                {
                    "name": "spoken and ended",
                    "modality": "voice",
                    "metadata": {"purpose": "support"},
                    "turns": [
                        {
                            "user": "My invoice is wrong.",
                            "expect": {
                                "agent": SUPPORT,
                                "reply_contains": [REPLY.split()[0]],
                                "rubric": "Polite.",
                                "session_ended": {"reason": "agent_ended"},
                            },
                        }
                    ],
                }
            ],
        }
    )
    stack = stack_of(endpoints, scripted_worker, judge=judge)
    module_llm.plan_tool_call("end_session", reason="the caller is done")
    try:
        async with agent_changed(worker_database, SUPPORT, tools=[EndSessionTool()]):
            config, pin = await version_under_test(worker_database, SUPPORT, None)
            run = await run_and_store(worker_database, stack, suite, config, pin, tokens_wait_s=0)
    finally:
        module_llm.planned_calls.clear()
        await judge_endpoint.stop()
    (scenario,) = run["scenarios"]
    assert run["passed"] and scenario["skipped"] == [], scenario["failures"]
    assert (run["models"]["judge"], run["models"]["caller"]) == (judge.model.name, None)
    # The judge read the line as the agent heard it (Whisper's words, not the script's).
    (asked,) = judge_endpoint.requests
    conversation = asked["messages"][-1]["content"].split("Conversation:\n", 1)[1]
    heard = [line for line in conversation.splitlines() if line.startswith("user: ")]
    assert len(heard) == 1 and {"invoice", "wrong"} & set(
        heard[0].lower().replace(".", " ").split()
    ), conversation
    assert conversation.endswith(f"agent: {REPLY}")
