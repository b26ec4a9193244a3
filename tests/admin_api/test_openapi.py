"""The OpenAPI document says what the API enforces (If-Match), and OPTIONS answers with Allow."""

import re
from typing import Any

import httpx
import pytest

from tests.admin_api.conftest import Keys
from tests.factories import support_definition

SUPPORT = "/api/v1/agents/support-agent-v1"
CHANNELS = "/api/v1/channels"
CHANNEL = {
    "binding_id": "openapi-http",
    "kind": "http",
    "agent_id": "support-agent-v1",
    "http": {"keys": ["backend"]},
}
# What a write without If-Match gets, per operation: the body it would otherwise be valid with.
REQUIRED_IF_MATCH: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("put", "/api/v1/agents/{agent_id}"): (SUPPORT, {"json": support_definition()}),
    (
        "patch",
        "/api/v1/agents/{agent_id}",
    ): (
        SUPPORT,
        {
            "json": {"description": "patched"},
            "headers": {"Content-Type": "application/merge-patch+json"},
        },
    ),
    ("put", "/api/v1/routing"): (
        "/api/v1/routing",
        {"json": {"chain": [{"strategy": "explicit"}]}},
    ),
    ("patch", "/api/v1/webhooks/{subscription_id}"): (
        f"/api/v1/webhooks/sub_{'0' * 24}",
        {"json": {"status": "paused"}},
    ),
}
# Status changes and rollback name their target, so they take If-Match only when given.
OPTIONAL_IF_MATCH: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("post", "/api/v1/agents/{agent_id}/pause"): (f"{SUPPORT}/pause", {}),
    ("post", "/api/v1/agents/{agent_id}/resume"): (f"{SUPPORT}/resume", {}),
    ("post", "/api/v1/agents/{agent_id}/rollback"): (
        f"{SUPPORT}/rollback",
        {"json": {"version": 1}},
    ),
    (
        "post",
        "/api/v1/agents/{agent_id}/versions/{version}/activate",
    ): (f"{SUPPORT}/versions/1/activate", {}),
    ("delete", "/api/v1/agents/{agent_id}"): (SUPPORT, {}),
    ("put", "/api/v1/channels/{binding_id}"): (f"{CHANNELS}/openapi-http", {"json": CHANNEL}),
}


def if_match_parameters(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): parameter
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header" and parameter["name"].lower() == "if-match"
    }


async def test_if_match_is_required_in_the_spec_exactly_where_a_write_without_it_is_428(
    api: httpx.AsyncClient, keys: Keys, seeded: None
) -> None:
    spec = (await api.get("/openapi.json")).json()
    parameters = if_match_parameters(spec)
    assert set(parameters) == set(REQUIRED_IF_MATCH) | set(OPTIONAL_IF_MATCH)
    required = {
        operation for operation, parameter in parameters.items() if parameter.get("required")
    }
    assert required == set(REQUIRED_IF_MATCH)
    for method, path in parameters:  # a 428 is documented where, and only where, it can happen
        assert ("428" in spec["paths"][path][method]["responses"]) == ((method, path) in required)

    for (method, _), (url, request) in REQUIRED_IF_MATCH.items():
        headers = keys.header("admin") | request.pop("headers", {})
        answered = await api.request(method.upper(), url, headers=headers, **request)
        assert answered.status_code == 428, (method, url, answered.text)
        assert answered.json()["type"] == "urn:switchboard:problem:if-match-required"
    created = await api.post(CHANNELS, json=CHANNEL, headers=keys.header("admin"))
    assert created.status_code == 201, created.text  # the channel's PUT replaces this one
    for (method, _), (url, request) in OPTIONAL_IF_MATCH.items():
        answered = await api.request(method.upper(), url, headers=keys.header("admin"), **request)
        assert answered.status_code == 200, (method, url, answered.text)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/agents", "GET, POST, OPTIONS"),
        ("/api/v1/agents/support-agent-v1", "GET, PUT, PATCH, DELETE, OPTIONS"),
        ("/api/v1/agents/support-agent-v1/pause", "POST, OPTIONS"),
        ("/api/v1/routing", "GET, PUT, OPTIONS"),
        ("/api/v1/token", "POST, OPTIONS"),
        ("/api/v1/events", "GET, OPTIONS"),
        ("/healthz", "GET, OPTIONS"),
    ],
)
async def test_options_answers_204_with_the_methods_the_path_allows(
    api: httpx.AsyncClient, path: str, allow: str
) -> None:
    answered = await api.options(path)
    assert answered.status_code == 204, answered.text
    assert answered.headers["allow"] == allow
    assert answered.content == b""


async def test_options_allows_every_documented_method_and_is_a_404_problem_on_an_unknown_path(
    api: httpx.AsyncClient,
) -> None:
    spec = (await api.get("/openapi.json")).json()
    for template, operations in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "1", template)
        answered = await api.options(path)
        assert answered.status_code == 204, (path, answered.text)
        allowed = set(answered.headers["allow"].split(", "))
        assert {method.upper() for method in operations} | {"OPTIONS"} <= allowed, path

    unknown = await api.options("/api/v1/nothing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "allow" not in unknown.headers
