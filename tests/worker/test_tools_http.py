"""The http tool against real HTTP servers on loopback, called the way livekit calls a raw
function tool (its own argument preparation, then the tool object build_tools returned)."""

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from livekit.agents import llm
from prometheus_client import REGISTRY

from agent_configs.egress import EgressPolicy
from tests.factories import support_config
from tests.worker.tool_calls import call
from tests.worker.tool_server import ToolServer
from worker.tools import ToolCallLog, ToolContext, build_tools
from worker.tools import http as http_tools
from worker.tools.context import ARGUMENTS_CHARS, ERROR_CHARS

SECRET = "orders-token-4f9c2e"
ALLOWED, OTHER, UNLISTED = "127.0.0.1", "127.0.0.2", "127.0.0.3"
"""The token may go to ALLOWED only; OTHER is reachable without it; UNLISTED not at all."""


class NoControls:
    async def end_session(self, reason: str, goodbye: str | None) -> str:
        raise AssertionError("not a built-in test")

    async def transfer(
        self, target: str, reason: str, context: Literal["full", "summary", "none"]
    ) -> str:
        raise AssertionError("not a built-in test")

    async def escalate(
        self, reason: str, then: Literal["continue", "hold", "end"], message: str | None
    ) -> str:
        raise AssertionError("not a built-in test")


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, ToolServer]]:
    started = {host: await ToolServer(host=host).start() for host in (ALLOWED, OTHER, UNLISTED)}
    yield started
    for server in started.values():
        await server.stop()


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> ToolContext:
    monkeypatch.setenv("ORDERS_TOKEN", SECRET)
    policy = EgressPolicy(
        _env_file=None, secrets={"ORDERS_TOKEN": [ALLOWED]}, hosts=[ALLOWED, OTHER]
    )
    return ToolContext(
        session_id="sess-1",
        agent_id="support",
        user_id="user-7",
        room="room-a",
        egress=policy,
        log=ToolCallLog(),
        controls=NoControls(),
        say=None,
    )


ORDER_PARAMETERS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "minLength": 1},
        "verbose": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id"],
}


def http_spec(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": "lookup_order",
        "description": "Look up an order.",
        "url": url,
        "parameters": ORDER_PARAMETERS,
    } | changes


async def one_tool(context: ToolContext, **spec: Any) -> llm.RawFunctionTool:
    (tool,) = await build_tools(support_config(tools=[http_spec(**spec)]), context)
    assert isinstance(tool, llm.RawFunctionTool)
    return tool


def calls_counted(outcome: str) -> float:
    labels = {"tool": "lookup_order", "kind": "http", "outcome": outcome}
    return REGISTRY.get_sample_value("switchboard_tool_calls_total", labels) or 0.0


async def test_arguments_fill_the_path_and_the_rest_go_to_the_query_string_of_a_get(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(context, url=servers[ALLOWED].url + "/orders/{order_id}?user={user_id}")
    result = json.loads(
        await call(tool, {"order_id": "A 1/2", "verbose": True, "tags": ["x", "y"]})
    )

    (received,) = servers[ALLOWED].requests
    assert received.method == "GET"
    assert received.path == "/orders/A%201%2F2"  # one path segment: a "/" cannot climb the path
    assert received.query == [("user", "user-7"), ("verbose", "true"), ("tags", "x"), ("tags", "y")]
    assert result["order"] == {"id": "A%201%2F2", "status": "shipped"}
    (record,) = context.log.drain()
    assert record.ok and record.error is None and record.name == "lookup_order"
    assert record.arguments == {"order_id": "A 1/2", "verbose": True, "tags": ["x", "y"]}
    assert record.result_preview.startswith('{"method":"GET"')


async def test_a_post_sends_the_remaining_arguments_as_the_json_body(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(
        context, url=servers[ALLOWED].url + "/orders/{order_id}/notes", method="POST"
    )
    await call(tool, {"order_id": "42", "verbose": False, "tags": ["late"]})

    (received,) = servers[ALLOWED].requests
    assert (received.method, received.path, received.query) == ("POST", "/orders/42/notes", [])
    assert received.body == {"verbose": False, "tags": ["late"]}


async def test_the_allowed_secret_header_reaches_the_allowed_host_and_never_another(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    headers = {
        "Authorization": {"env": "ORDERS_TOKEN"},
        "X-Session": {"session": "session_id"},
        "X-Client": {"value": "switchboard"},
    }
    allowed = await one_tool(
        context, url=servers[ALLOWED].url + "/orders/{order_id}", headers=headers
    )
    await call(allowed, {"order_id": "1"})
    (received,) = servers[ALLOWED].requests
    assert received.headers["Authorization"] == SECRET
    assert (received.headers["X-Session"], received.headers["X-Client"]) == (
        "sess-1",
        "switchboard",
    )

    refused_before = calls_counted("refused")
    elsewhere = await one_tool(
        context, url=servers[OTHER].url + "/orders/{order_id}", headers=headers
    )
    result = json.loads(await call(elsewhere, {"order_id": "1"}))

    assert servers[OTHER].requests == []  # refused before any request: the token never left
    assert result["error"].startswith(
        "refused by the egress policy: tools.0.headers.Authorization.env:"
    )
    assert f"ORDERS_TOKEN may only be sent to {ALLOWED}" in result["error"]
    records = context.log.drain()
    assert [r.ok for r in records] == [True, False]
    assert SECRET not in json.dumps([r.as_dict() for r in records])
    assert calls_counted("refused") == refused_before + 1


async def test_a_host_the_policy_does_not_list_never_receives_a_request(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(context, url=servers[UNLISTED].url + "/orders/{order_id}")
    result = json.loads(await call(tool, {"order_id": "1"}))

    assert servers[UNLISTED].requests == []
    assert result == {
        "error": f"refused by the egress policy: tools.0.url: host '{UNLISTED}' is not allowed "
        "by the egress policy (EGRESS_HOSTS / EGRESS_SECRETS)"
    }
    (record,) = context.log.drain()
    assert not record.ok and record.error == result["error"]


async def test_a_timeout_gives_the_model_an_error_result_without_waiting_for_the_server(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    timeouts_before = calls_counted("timeout")
    tool = await one_tool(context, url=servers[ALLOWED].url + "/slow?id={order_id}", timeout_s=0.3)
    started = time.perf_counter()
    result = await call(tool, {"order_id": "1"})
    elapsed = time.perf_counter() - started

    assert json.loads(result) == {"error": "timeout after 0.3s"}
    assert 0.3 <= elapsed < 0.3 + 0.25
    (record,) = context.log.drain()
    assert (record.ok, record.error) == (False, "timeout after 0.3s")
    assert 300 <= record.duration_ms < 550
    assert calls_counted("timeout") == timeouts_before + 1


async def test_a_server_error_gives_the_status_and_a_short_preview_of_the_body(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(context, url=servers[ALLOWED].url + "/fail?id={order_id}")
    result = json.loads(await call(tool, {"order_id": "1"}))

    assert result == {"error": "HTTP 500: database is down please retry later"}
    (record,) = context.log.drain()
    assert (record.ok, record.error) == (False, "HTTP 500: database is down please retry later")


async def test_a_redirect_is_not_followed(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(context, url=servers[ALLOWED].url + "/redirect?id={order_id}")
    result = json.loads(await call(tool, {"order_id": "1"}))

    assert result == {"error": "HTTP 302: redirects are not followed"}
    assert [r.path for r in servers[ALLOWED].requests] == ["/redirect"]


async def test_result_pointer_picks_the_part_of_the_response_the_model_gets(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(
        context, url=servers[ALLOWED].url + "/orders/{order_id}", result_pointer="/order/status"
    )
    assert await call(tool, {"order_id": "9"}) == "shipped"

    whole = await one_tool(
        context, url=servers[ALLOWED].url + "/orders/{order_id}", result_pointer="/order"
    )
    assert json.loads(await call(whole, {"order_id": "9"})) == {"id": "9", "status": "shipped"}

    missing = await one_tool(
        context, url=servers[ALLOWED].url + "/orders/{order_id}", result_pointer="/order/eta"
    )
    assert json.loads(await call(missing, {"order_id": "9"})) == {
        "error": "result_pointer /order/eta: not in the response"
    }


async def test_max_result_chars_cuts_json_and_text_and_says_so(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    big = await one_tool(
        context, url=servers[ALLOWED].url + "/big?id={order_id}", max_result_chars=120
    )
    result = await call(big, {"order_id": "1"})
    assert (
        len(result) == 120
        and result.startswith('{"items":[{"n":0,')
        and result.endswith("...[truncated]")
    )

    text = await one_tool(
        context, url=servers[ALLOWED].url + "/text?id={order_id}", max_result_chars=60
    )
    result = await call(text, {"order_id": "1"})
    assert result == ("plain words " * 5)[:46] + "...[truncated]"
    assert all(len(r.result_preview) <= 200 for r in context.log.drain())


async def test_invalid_arguments_tell_the_model_what_is_wrong_and_never_reach_the_server(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    tool = await one_tool(context, url=servers[ALLOWED].url + "/orders/{order_id}")

    missing = json.loads(await call(tool, {"verbose": "yes"}))
    wrong_type = json.loads(await call(tool, {"order_id": 12}))

    assert servers[ALLOWED].requests == []
    assert missing == {
        "error": "invalid arguments: 'order_id' is a required property; verbose: 'yes' is not of type 'boolean'"
    }
    assert wrong_type == {"error": "invalid arguments: order_id: 12 is not of type 'string'"}
    assert [r.ok for r in context.log.drain()] == [False, False]


async def test_the_waiting_message_is_said_while_the_request_runs(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    said: list[str] = []
    finished_saying = asyncio.Event()

    async def say(message: str) -> None:
        await servers[ALLOWED].arrived.wait()  # would never finish if the tool waited for it
        said.append(message)
        finished_saying.set()

    speaking = ToolContext(**{**context.__dict__, "say": say})
    tool = await one_tool(
        speaking, url=servers[ALLOWED].url + "/orders/{order_id}", waiting_message="One moment."
    )
    result = await asyncio.wait_for(call(tool, {"order_id": "5"}), timeout=5)

    assert json.loads(result)["order"]["id"] == "5"
    await asyncio.wait_for(finished_saying.wait(), timeout=5)
    assert said == ["One moment."]


async def test_a_session_value_the_session_lacks_is_an_error_result(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    anonymous = ToolContext(**{**context.__dict__, "user_id": None})
    tool = await one_tool(
        anonymous, url=servers[ALLOWED].url + "/users/{user_id}/orders/{order_id}"
    )

    result = json.loads(await call(tool, {"order_id": "5"}))

    assert result == {"error": "the url needs user_id, which this session does not have"}
    assert servers[ALLOWED].requests == []


@pytest.mark.parametrize("name", ["Host", "transfer-encoding"])
async def test_a_connection_level_header_in_a_config_that_slipped_in_is_never_sent(
    servers: dict[str, ToolServer], context: ToolContext, name: str
) -> None:
    """Written by hand past the admin API's 422: the call is refused before any request."""
    tool = await one_tool(
        context,
        url=servers[ALLOWED].url + "/orders/{order_id}",
        headers={"X-Client": {"value": "switchboard"}, name: {"value": "admin.internal"}},
    )
    result = json.loads(await call(tool, {"order_id": "1"}))

    assert servers[ALLOWED].requests == []
    assert result["error"].startswith(
        f"refused by the egress policy: tools.0.headers.{name}: a connection-level header"
    )
    (record,) = context.log.drain()
    assert not record.ok


SESSION_BOUND_URL = "/users/{user_id}/orders?owner={user_id}"


async def test_the_model_cannot_add_a_field_beside_one_the_session_binds(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    """The schema's default allows no other properties, so `owner` is refused, not sent."""
    tool = await one_tool(
        context,
        url=servers[ALLOWED].url + SESSION_BOUND_URL,
        parameters={"type": "object", "properties": {"status": {"type": "string"}}},
    )
    refused = json.loads(await call(tool, {"status": "open", "owner": "u-2", "user_id": "u-2"}))

    assert servers[ALLOWED].requests == []
    assert refused["error"].startswith("invalid arguments: Additional properties are not allowed")

    await call(tool, {"status": "open"})
    (received,) = servers[ALLOWED].requests
    assert (received.path, received.query) == (
        "/users/user-7/orders",
        [("owner", "user-7"), ("status", "open")],
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_declared_argument_named_like_a_session_bound_field_never_reaches_the_server(
    servers: dict[str, ToolServer], context: ToolContext, method: str
) -> None:
    """A config stored before the write-time check (or allowing other properties) declares them:
    the session's values go, the model's are left out of the query and the body."""
    parameters = {
        "type": "object",
        "properties": {"owner": {"type": "string"}, "user_id": {"type": "string"}},
        "additionalProperties": True,
    }
    tool = await one_tool(
        context, url=servers[ALLOWED].url + SESSION_BOUND_URL, parameters=parameters, method=method
    )
    await call(tool, {"owner": "u-2", "user_id": "u-2", "note": "hi"})

    (received,) = servers[ALLOWED].requests
    assert received.path == "/users/user-7/orders"
    if method == "GET":
        assert received.query == [("owner", "user-7"), ("note", "hi")]
    else:
        assert (received.query, received.body) == ([("owner", "user-7")], {"note": "hi"})


@pytest.mark.parametrize("user_id", ["..", "."])
async def test_a_session_value_that_is_a_dot_segment_never_changes_the_path(
    servers: dict[str, ToolServer], context: ToolContext, user_id: str
) -> None:
    dotted = ToolContext(**{**context.__dict__, "user_id": user_id})
    tool = await one_tool(dotted, url=servers[ALLOWED].url + "/users/{user_id}/orders/{order_id}")

    result = json.loads(await call(tool, {"order_id": "5"}))

    assert servers[ALLOWED].requests == []
    assert result == {
        "error": f"the session's user_id '{user_id}' is not usable in the url (a dot segment)"
    }


async def test_a_huge_argument_is_recorded_cut_and_marked(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    parameters = {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "note": {"type": "string"}},
    }
    tool = await one_tool(
        context,
        url=servers[ALLOWED].url + "/orders/{order_id}/notes",
        method="POST",
        parameters=parameters,
    )
    note = "n" * 1_000_000
    await call(tool, {"order_id": "42", "note": note})

    assert servers[ALLOWED].requests[0].body == {"note": note}  # the call itself is whole
    (record,) = context.log.drain()
    recorded = record.as_dict()
    assert recorded["arguments_truncated"] is True
    assert recorded["arguments"]["order_id"] == "42"
    assert recorded["arguments"]["note"].startswith("nnn")
    assert recorded["arguments"]["note"].endswith("...[truncated]")
    assert len(json.dumps(recorded["arguments"])) <= ARGUMENTS_CHARS + 100

    await call(tool, {"order_id": "43", "note": "short"})
    (small,) = context.log.drain()
    assert small.as_dict()["arguments"] == {"order_id": "43", "note": "short"}
    assert "arguments_truncated" not in small.as_dict()


async def test_the_error_about_a_huge_invalid_argument_is_cut_too(
    servers: dict[str, ToolServer], context: ToolContext
) -> None:
    """jsonschema quotes the value it refuses: the whole megabyte would go back to the model
    and into the record's `error`."""
    tool = await one_tool(context, url=servers[ALLOWED].url + "/orders/{order_id}")

    result = await call(tool, {"order_id": "1", "verbose": "v" * 1_000_000})

    assert servers[ALLOWED].requests == []
    (record,) = context.log.drain()
    assert record.error is not None and record.error.startswith("invalid arguments: verbose: 'vvv")
    assert len(record.error) <= ERROR_CHARS and record.error.endswith("...[truncated]")
    assert json.loads(result) == {"error": record.error}


async def test_the_first_call_of_a_new_session_loads_no_certificates(
    servers: dict[str, ToolServer], context: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session runs in a new job process with an event loop of its own (here: a thread's). Its
    first http call used to build the tool client's TLS context, loading the CA bundle (~17 ms
    of CPU, plain http URLs included): the bulk of the 30-40 ms a first call took over a warm
    one. The process's context, made once at import, is inherited by every job process."""
    loaded: list[object] = []
    load_verify_locations = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loaded.append(args or kwargs)
        load_verify_locations(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)

    async def new_session() -> str:
        tool = await one_tool(context, url=servers[ALLOWED].url + "/orders/{order_id}")
        try:
            return await call(tool, {"order_id": "7"})
        finally:
            await http_tools.close_shared_client()

    result = json.loads(await asyncio.to_thread(asyncio.run, new_session()))

    assert result["order"]["id"] == "7"
    assert loaded == []
