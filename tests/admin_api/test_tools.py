"""Tools over HTTP: every write-time check is a 422 naming the field, and nothing is written.

The operator's policy here allows OPENAI_API_KEY to OpenAI and ORDERS_API_TOKEN to the
example's orders service on loopback (EGRESS_SECRETS, read from the environment as in production).
"""

from typing import Any

import httpx
import pytest

from admin_api.settings import AdminSettings
from agent_configs.files import load_config_file
from agent_configs.models import AgentConfig
from devstack import REPO_ROOT, Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app
from tests.factories import support_definition

AGENTS = "/api/v1/agents"
SUPPORT = f"{AGENTS}/support-agent-v1"
EXAMPLE = REPO_ROOT / "agent_configs" / "examples" / "support-with-tools.yaml"
ORDERS_URL = "http://127.0.0.1:8099/orders/{order_id}"
ORDER_ID = {"type": "object", "properties": {"order_id": {"type": "string"}}}


@pytest.fixture
def settings(
    endpoints: Endpoints, database_name: str, monkeypatch: pytest.MonkeyPatch
) -> AdminSettings:
    monkeypatch.setenv(
        "EGRESS_SECRETS",
        '{"OPENAI_API_KEY": ["api.openai.com"], "ORDERS_API_TOKEN": ["127.0.0.1:8099"]}',
    )
    monkeypatch.delenv("EGRESS_HOSTS", raising=False)
    return admin_settings(endpoints, database_name)


def lookup(**changes: Any) -> dict[str, Any]:
    tool = {
        "kind": "http",
        "name": "lookup_order",
        "description": "Look up an order.",
        "url": ORDERS_URL,
    }
    return tool | {"parameters": ORDER_ID} | changes


def transfer(*targets: str) -> dict[str, Any]:
    return {"kind": "transfer_to_agent", "targets": list(targets)}


def example_definition() -> dict[str, Any]:
    loaded = load_config_file(EXAMPLE)
    assert isinstance(loaded, AgentConfig), loaded
    return loaded.definition()


# Each case: the tools, and the one field (with the start of its message) a write is refused for.
REFUSED = {
    "schema": (
        [lookup(parameters={"type": "object", "properties": {"n": {"type": "int"}}})],
        "tools.0.parameters",
        "not a valid JSON Schema at properties/n/type",
    ),
    "kind": ([{"kind": "shell", "name": "run"}], "tools.0.kind", "Input tag 'shell'"),
    "placeholder": (
        [lookup(url="http://127.0.0.1:8099/orders/{order}")],
        "tools.0.url",
        "placeholder {order} is neither a parameter nor a session value",
    ),
    "twice": (
        [lookup(), lookup()],
        "tools.1.name",
        "'lookup_order' is already the name of tools.0",
    ),
    "self": (
        [transfer("support-agent-v1")],
        "tools.0.targets.0",
        "an agent type cannot transfer to itself",
    ),
    "two_ends": (
        [{"kind": "end_session"}, {"kind": "end_session", "name": "hang_up"}],
        "tools.1.kind",
        "one end_session tool per agent type",
    ),
    "target": (
        [transfer("sales-agent-v1", "billing-agent")],
        "tools.0.targets.1",
        "no agent type 'billing-agent'",
    ),
    "plugin": (
        [{"kind": "plugin", "name": "find_customer", "plugin": "crm_lookup"}],
        "tools.0.plugin",
        "no tool 'crm_lookup' is installed in the switchboard.tools entry points",
    ),
    "url": (
        [lookup(url="https://orders.example/orders/{order_id}")],
        "tools.0.url",
        "host 'orders.example' is not allowed by the egress policy",
    ),
    "header": (
        [lookup(headers={"Authorization": {"env": "OPENAI_API_KEY"}})],
        "tools.0.headers.Authorization.env",
        "OPENAI_API_KEY may only be sent to api.openai.com",
    ),
    "mcp": (
        [{"kind": "mcp", "name": "crm", "url": "http://10.0.0.9/mcp"}],
        "tools.0.url",
        "host '10.0.0.9' is not allowed",
    ),
    "host_header": (
        [lookup(headers={"Host": {"value": "admin.internal"}})],
        "tools.0.headers.Host",
        "a connection-level header",
    ),
    "mcp_framing_header": (
        [
            {
                "kind": "mcp",
                "name": "crm",
                "url": "http://127.0.0.1:8099/mcp",
                "headers": {"transfer-encoding": {"value": "chunked"}},
            }
        ],
        "tools.0.headers.transfer-encoding",
        "a connection-level header",
    ),
    "session_bound": (
        [
            lookup(
                url="http://127.0.0.1:8099/orders?owner={user_id}",
                parameters={"type": "object", "properties": {"owner": {"type": "string"}}},
            )
        ],
        "tools.0.parameters.properties.owner",
        "owner is taken from the session in the url",
    ),
}


def the_field(body: dict[str, Any], field: str, message: str) -> None:
    assert [e["field"] for e in body["errors"]] == [field], body
    assert body["errors"][0]["message"].startswith(message), body


@pytest.mark.parametrize(("tools", "field", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_refused_create_names_the_field_and_writes_nothing(
    api: httpx.AsyncClient, keys: Keys, seeded: None, tools: list[Any], field: str, message: str
) -> None:
    # A new type of its own, so the "self" case transfers to orders-desk itself.
    mine = [
        t | {"targets": ["orders-desk"]} if t.get("targets") == ["support-agent-v1"] else t
        for t in tools
    ]
    definition = support_definition(agent_id="orders-desk", tools=mine)
    response = await api.post(AGENTS, json=definition, headers=keys.header("admin"))
    assert response.status_code == 422, response.text
    the_field(response.json(), field, message)
    assert (
        await api.get(f"{AGENTS}/orders-desk", headers=keys.header("viewer"))
    ).status_code == 404


@pytest.mark.parametrize(("tools", "field", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_refused_put_or_patch_keeps_the_current_version(
    api: httpx.AsyncClient, keys: Keys, seeded: None, tools: list[Any], field: str, message: str
) -> None:
    headers = keys.header("admin") | {"If-Match": '"1"'}
    put = await api.put(SUPPORT, json=support_definition(tools=tools), headers=headers)
    assert put.status_code == 422, put.text
    the_field(put.json(), field, message)
    patch = await api.patch(SUPPORT, json={"tools": tools}, headers=headers)
    assert patch.status_code == 422, patch.text
    the_field(patch.json(), field, message)
    current = await api.get(SUPPORT, headers=keys.header("viewer"))
    assert current.headers["etag"] == '"1"' and current.json()["tools"] == []


@pytest.mark.parametrize(("tools", "field", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_validate_reports_what_a_write_would_refuse(
    api: httpx.AsyncClient, keys: Keys, seeded: None, tools: list[Any], field: str, message: str
) -> None:
    definition = support_definition(tools=tools)
    response = await api.post(f"{AGENTS}/validate", json=definition, headers=keys.header("viewer"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["valid"] is False
    the_field(report, field, message)


async def test_a_422_lists_every_problem_at_once(
    api: httpx.AsyncClient, keys: Keys, seeded: None
) -> None:
    tools = [lookup(url="https://orders.example/orders/{order_id}"), transfer("billing-agent")]
    definition = support_definition(agent_id="orders-desk", tools=tools)
    response = await api.post(AGENTS, json=definition, headers=keys.header("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:switchboard:problem:validation",
        "title": "The request is not valid",
        "status": 422,
        "detail": (
            "tools.0.url: host 'orders.example' is not allowed by the egress policy (EGRESS_HOSTS / EGRESS_SECRETS); "
            "tools.1.targets.0: no agent type 'billing-agent'"
        ),
        "instance": AGENTS,
        "errors": [
            {
                "field": "tools.0.url",
                "message": "host 'orders.example' is not allowed by the egress policy (EGRESS_HOSTS / EGRESS_SECRETS)",
                "location": "body",
            },
            {
                "field": "tools.1.targets.0",
                "message": "no agent type 'billing-agent'",
                "location": "body",
            },
        ],
    }


async def test_the_readme_example_of_a_refused_create_is_what_the_api_answers(
    endpoints: Endpoints, database_name: str, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Tools section: the default policy, no sales-agent-v1 stored."""
    monkeypatch.delenv("EGRESS_SECRETS", raising=False)
    async with running_app(admin_settings(endpoints, database_name)) as (_, client):
        response = await client.post(
            AGENTS, json=example_definition(), headers=keys.header("admin")
        )
    header = (
        "ORDERS_API_TOKEN is not a key configs may use (the operator lists them in EGRESS_SECRETS)"
    )
    assert response.status_code == 422
    assert response.json() == {
        "type": "urn:switchboard:problem:validation",
        "title": "The request is not valid",
        "status": 422,
        "detail": f"tools.0.headers.Authorization.env: {header}; tools.1.targets.0: no agent type 'sales-agent-v1'",
        "instance": AGENTS,
        "errors": [
            {"field": "tools.0.headers.Authorization.env", "message": header, "location": "body"},
            {
                "field": "tools.1.targets.0",
                "message": "no agent type 'sales-agent-v1'",
                "location": "body",
            },
        ],
    }


async def test_the_example_round_trips_through_the_api(
    api: httpx.AsyncClient, keys: Keys, seeded: None
) -> None:
    definition = example_definition()
    report = (
        await api.post(f"{AGENTS}/validate", json=definition, headers=keys.header("viewer"))
    ).json()
    assert report["valid"] is True, report
    created = await api.post(AGENTS, json=definition, headers=keys.header("admin"))
    assert created.status_code == 201, created.text
    read = (await api.get(f"{AGENTS}/support-tools-example", headers=keys.header("viewer"))).json()
    assert {
        k: v for k, v in read.items() if k not in ("version", "created_at", "updated_at")
    } == definition
    assert read["tools"][0]["headers"]["Authorization"] == {
        "env": "ORDERS_API_TOKEN",
        "session": None,
        "value": None,
    }


async def test_rollback_to_a_version_whose_target_was_archived_is_refused_but_pause_is_not(
    api: httpx.AsyncClient, keys: Keys, seeded: None
) -> None:
    def if_match(version: int) -> dict[str, str]:
        return keys.header("admin") | {"If-Match": f'"{version}"'}

    with_transfer = await api.patch(
        SUPPORT, json={"tools": [transfer("sales-agent-v1")]}, headers=if_match(1)
    )
    assert with_transfer.status_code == 200, with_transfer.text
    assert (await api.patch(SUPPORT, json={"tools": []}, headers=if_match(2))).status_code == 200
    assert (
        await api.delete(f"{AGENTS}/sales-agent-v1", headers=keys.header("admin"))
    ).status_code == 200

    rollback = await api.post(f"{SUPPORT}/rollback", json={"version": 2}, headers=if_match(3))
    assert rollback.status_code == 422, rollback.text
    the_field(rollback.json(), "tools.0.targets.0", "agent type 'sales-agent-v1' is archived")
    assert (await api.get(SUPPORT, headers=keys.header("viewer"))).headers["etag"] == '"3"'

    # The same archived target does not stop a status change of a type that names it.
    assert (
        await api.post(f"{AGENTS}/sales-agent-v1/resume", headers=keys.header("admin"))
    ).status_code == 200
    assert (
        await api.post(f"{SUPPORT}/rollback", json={"version": 2}, headers=if_match(3))
    ).status_code == 200
    assert (
        await api.delete(f"{AGENTS}/sales-agent-v1", headers=keys.header("admin"))
    ).status_code == 200
    paused = await api.post(f"{SUPPORT}/pause", headers=keys.header("admin"))
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["tools"][0]["targets"] == [
        "sales-agent-v1"
    ]
