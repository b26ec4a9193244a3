"""The `webhook` strategy against a real hook on loopback: chosen, or the chain goes on with why."""

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from agent_configs.egress import EgressPolicy
from agent_configs.routing import (
    InvalidRoutingRules,
    MemoryAvailability,
    Router,
    RoutingContext,
    RoutingDecision,
    RoutingRules,
    StaticRules,
    validate_rules,
)
from agent_configs.routing.webhook import MAX_VARIABLES_BYTES, WebhookParams, WebhookStrategy
from agent_configs.tools import HeaderValue
from devstack.services import reserve_port
from tests.agent_configs.routing.helpers import builtin_configs
from tests.agent_configs.routing.hook_server import HookServer

METADATA = {
    "purpose": "billing",
    "agent_id": "support-agent-v1",
    "user_id": "u-7",
    "tenant": "acme",
    "modality": "text",
    "user_details": {"name": "Ada", "email": "ada@example.com"},
}


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = await HookServer().start()
    yield server
    await server.stop()


def router_for(hook_params: dict[str, Any]) -> Router:
    rules = RoutingRules.model_validate(
        {
            "chain": [
                {"strategy": "webhook", "params": hook_params},
                {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
            ]
        }
    )
    return Router(StaticRules(validate_rules(rules)), MemoryAvailability(builtin_configs()))


async def route(router: Router, metadata: dict[str, Any] = METADATA) -> RoutingDecision:
    """As the worker routes: the room's name is its own, never the metadata's."""
    return await router.route(replace(RoutingContext.from_metadata(metadata), room="room-1"))


def webhook_entry(decision: RoutingDecision) -> tuple[str | None, str, str]:
    entry = decision.trail[0]
    assert entry.strategy == "webhook"
    return entry.agent_id, entry.outcome, entry.reason


async def test_the_hook_picks_the_agent_type_and_its_variables_go_with_the_decision(
    hook: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGRESS_SECRETS", json.dumps({"HOOK_TOKEN": ["loopback"]}))
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret-1")
    hook.answer = {
        "agent_id": "sales-agent-v1",
        "variables": {"plan": "gold", "account": {"seats": 3}},
    }
    router = router_for(
        {
            "url": hook.url,
            "headers": {"Authorization": {"env": "HOOK_TOKEN"}, "X-Team": {"value": "ops"}},
        }
    )

    decision = await route(router)

    assert (decision.agent_id, decision.strategy) == ("sales-agent-v1", "webhook")
    assert webhook_entry(decision) == (
        "sales-agent-v1",
        "chosen",
        "the hook picked sales-agent-v1 with 2 variable(s)",
    )
    assert decision.variables == {"plan": "gold", "account": {"seats": 3}}
    assert decision.model_dump(mode="json")["variables"] == {
        "plan": "gold",
        "account": {"seats": 3},
    }
    [received] = hook.requests
    assert received.body == {
        "purpose": "billing",
        "agent_id": "support-agent-v1",
        "user_id": "u-7",
        "tenant": "acme",
        "modality": "text",
        "room": "room-1",
    }
    assert received.headers["Authorization"] == "hook-secret-1"
    assert received.headers["X-Team"] == "ops"


async def test_user_details_are_sent_only_when_the_params_say_so(hook: HookServer) -> None:
    await route(router_for({"url": hook.url, "include_user_details": True}))
    assert hook.requests[0].body["user_details"] == {"name": "Ada", "email": "ada@example.com"}


async def test_a_hook_slower_than_the_timeout_is_left_behind_and_the_chain_goes_on(
    hook: HookServer,
) -> None:
    hook.delay_s = 3.0
    router = router_for({"url": hook.url, "timeout_s": 0.5})

    started = time.monotonic()
    decision = await route(router)

    assert time.monotonic() - started < 1.5
    assert webhook_entry(decision) == (None, "no_proposal", "timed out after 0.5s")
    assert (decision.agent_id, decision.strategy, decision.variables) == (
        "support-agent-v1",
        "default",
        {},
    )


async def test_an_error_status_falls_through_with_the_status_in_the_trail(hook: HookServer) -> None:
    hook.status, hook.answer = 500, {"agent_id": "sales-agent-v1"}
    decision = await route(router_for({"url": hook.url}))
    assert webhook_entry(decision) == (None, "no_proposal", "HTTP 500")
    assert decision.strategy == "default"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"<html>oops</html>", "answer: not JSON"),
        (["sales-agent-v1"], "answer: expected a JSON object, got list"),
        ({"variables": {"plan": "gold"}}, "answer: agent_id missing"),
        ({"agent_id": "Sales Agent!"}, 'answer: agent_id "Sales Agent!" is not an agent id'),
        ({"agent_id": 42}, "answer: agent_id 42 is not an agent id"),
        (
            {"agent_id": "sales-agent-v1", "variables": ["gold"]},
            "answer: variables must be an object",
        ),
        (
            {"agent_id": "sales-agent-v1", "variables": {"blob": "x" * MAX_VARIABLES_BYTES}},
            f"answer: variables are {MAX_VARIABLES_BYTES + 11} bytes, over the {MAX_VARIABLES_BYTES}-byte limit",
        ),
    ],
)
async def test_a_bad_answer_falls_through_saying_what_is_wrong(
    hook: HookServer, answer: Any, reason: str
) -> None:
    hook.answer = answer
    decision = await route(router_for({"url": hook.url}))
    assert webhook_entry(decision) == (None, "no_proposal", reason)
    assert (decision.agent_id, decision.strategy) == ("support-agent-v1", "default")


async def test_an_unknown_agent_type_from_the_hook_is_skipped_like_any_proposal(
    hook: HookServer,
) -> None:
    hook.answer = {"agent_id": "nobody-agent-v1", "variables": {"plan": "gold"}}
    decision = await route(router_for({"url": hook.url}))
    assert webhook_entry(decision) == ("nobody-agent-v1", "skipped", "unknown agent")
    assert (decision.agent_id, decision.variables) == ("support-agent-v1", {})


async def test_a_hook_that_is_not_listening_falls_through() -> None:
    port = reserve_port(0, "a closed port", "UNUSED")
    decision = await route(router_for({"url": f"http://127.0.0.1:{port}/route"}))
    agent_id, outcome, reason = webhook_entry(decision)
    assert (agent_id, outcome) == (None, "no_proposal")
    assert reason == "cannot reach the hook: ConnectError"


async def test_why_a_hook_cannot_be_reached_is_the_same_words_whatever_listens_there(
    hook: HookServer,
) -> None:
    """The trail is shown to viewers: the exception's text ("[SSL: WRONG_VERSION_NUMBER]" from
    a plain HTTP server, "All connection attempts failed" from a closed port) would tell them
    what listens where. Only the kind of failure is kept; the operator's log has the rest."""
    closed = reserve_port(0, "a closed port", "UNUSED")
    reasons = [
        webhook_entry(await route(router_for({"url": url})))[2]
        for url in (f"https://127.0.0.1:{hook.port}/route", f"https://127.0.0.1:{closed}/route")
    ]
    assert reasons == ["cannot reach the hook: ConnectError"] * 2
    assert hook.requests == []


async def test_a_url_the_egress_policy_refuses_is_refused_at_write_time_and_never_called(
    hook: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGRESS_HOSTS", json.dumps(["hooks.example"]))
    rules = {
        "chain": [
            {"strategy": "default", "params": {"agent_id": "support-agent-v1"}},
            {"strategy": "webhook", "params": {"url": hook.url}},
            {
                "strategy": "webhook",
                "params": {
                    "url": "https://hooks.example/r",
                    "headers": {"Authorization": {"env": "LIVEKIT_API_SECRET"}},
                },
            },
        ]
    }
    with pytest.raises(InvalidRoutingRules) as refused:
        validate_rules(rules)
    # The admin API answers these as a 422 naming `chain.1.params.url` and `chain.2.params.headers`.
    problems = {(p.index, p.strategy, p.field): p.message for p in refused.value.problems}
    assert problems == {
        (
            1,
            "webhook",
            "params.url",
        ): "host '127.0.0.1' is not allowed by the egress policy (EGRESS_HOSTS / EGRESS_SECRETS)",
        (
            2,
            "webhook",
            "params.headers",
        ): "Authorization.env: LIVEKIT_API_SECRET is a Switchboard credential and is never sent anywhere",
    }

    # Rules stored before the operator narrowed the policy: the call-time check refuses too.
    stored = WebhookParams.model_construct(
        url=hook.url, timeout_s=1.5, headers={}, include_user_details=False
    )
    strategy = WebhookStrategy(stored, egress=EgressPolicy(_env_file=None, hosts=["hooks.example"]))
    proposal = await strategy.propose(RoutingContext.from_metadata(METADATA), None)  # type: ignore[arg-type]
    assert proposal.agent_id is None
    assert proposal.reason.startswith(
        "refused by the egress policy: url: host '127.0.0.1' is not allowed"
    )
    assert hook.requests == []


async def test_a_url_carrying_a_secret_is_refused_at_its_field(hook: HookServer) -> None:
    """The URL is stored and shown with the rules, like a webhook subscription's or a tool's."""
    urls = (f"{hook.url}?token=s3cr3t-value-1", hook.url.replace("://", "://crm:s3cr3t@"))
    with pytest.raises(InvalidRoutingRules) as refused:
        validate_rules({"chain": [{"strategy": "webhook", "params": {"url": u}} for u in urls]})
    problems = {(p.index, p.field): p.message for p in refused.value.problems}
    assert list(problems) == [(0, "params.url"), (1, "params.url")]
    assert problems[0, "params.url"].startswith("looks like a credential in a URL query")
    assert problems[1, "params.url"].startswith("looks like a credential in a URL")
    assert not any("s3cr3t" in message for message in problems.values())


async def test_the_timeout_is_bounded_and_session_headers_are_refused() -> None:
    with pytest.raises(InvalidRoutingRules) as refused:
        validate_rules(
            {
                "chain": [
                    {
                        "strategy": "webhook",
                        "params": {
                            "url": "http://127.0.0.1:1/r",
                            "timeout_s": 30,
                            "headers": {"X-User": {"session": "user_id"}},
                        },
                    }
                ]
            }
        )
    assert {p.field for p in refused.value.problems} == {"params.timeout_s", "params.headers"}


async def test_a_variable_that_looks_like_a_secret_is_withheld_wherever_the_decision_is_stored(
    hook: HookServer,
) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTcifQ.c2lnbmF0dXJl"
    hook.answer = {
        "agent_id": "sales-agent-v1",
        "variables": {"plan": "gold", "crm": {"token": token}},
    }
    decision = await route(router_for({"url": hook.url}))
    assert decision.variables["crm"]["token"] == token  # the templates may use it
    stored = decision.model_dump(mode="json")["variables"]
    assert stored == {"plan": "gold", "crm": {"token": "[withheld: looks like a JSON Web Token]"}}
    assert token not in decision.model_dump_json()


async def test_a_connection_level_header_is_refused_at_write_time_and_never_sent(
    hook: HookServer,
) -> None:
    headers = {"X-Team": {"value": "ops"}, "host": {"value": "admin.internal"}}
    with pytest.raises(InvalidRoutingRules) as refused:
        validate_rules(
            {"chain": [{"strategy": "webhook", "params": {"url": hook.url, "headers": headers}}]}
        )
    # The admin API answers it as a 422 naming `chain.0.params.headers`.
    [problem] = refused.value.problems
    assert (problem.index, problem.field) == (0, "params.headers")
    assert problem.message.startswith("host: a connection-level header")

    # Rules stored by hand: the call-time check refuses before any request.
    stored = WebhookParams.model_construct(
        url=hook.url,
        timeout_s=1.5,
        headers={"Transfer-Encoding": HeaderValue(value="chunked")},
        include_user_details=False,
    )
    strategy = WebhookStrategy(stored, egress=EgressPolicy(_env_file=None))
    proposal = await strategy.propose(RoutingContext.from_metadata(METADATA), None)  # type: ignore[arg-type]
    assert proposal.agent_id is None
    assert proposal.reason.startswith(
        "refused by the egress policy: headers.Transfer-Encoding: a connection-level header"
    )
    assert hook.requests == []
