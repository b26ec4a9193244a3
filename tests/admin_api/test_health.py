"""Probes, metrics, a database outage (503 + Retry-After, never a hang), CORS, plain HTTP errors."""

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack import Endpoints
from tests.admin_api.conftest import Keys, admin_settings, running_app

LATENCY = "switchboard_admin_request_duration_seconds"


async def test_healthz_and_readyz(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_histogram_by_route_template_and_status(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    await api.get("/api/v1/agents/support-agent-v1", headers=keys.header("viewer"))  # 404
    await api.get(
        "/api/v1/agents/sales-agent-v1", headers=keys.header("viewer")
    )  # 404, same template
    await api.get("/api/v1/agents", headers=keys.header("viewer"))
    await api.get("/api/v1/agents")  # 401
    await api.get("/no/such/path")
    text = (await api.get("/metrics")).text
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == LATENCY
        for s in family.samples
        if s.name == f"{LATENCY}_count"
    }
    assert counts[("GET", "/api/v1/agents/{agent_id}", "404")] == 2
    assert counts[("GET", "/api/v1/agents", "200")] == 1
    assert counts[("GET", "/api/v1/agents", "401")] == 1
    assert counts[("GET", "unmatched", "404")] == 1
    assert not any("sales-agent-v1" in route for _, route, _ in counts)


async def test_database_outage_is_503_with_retry_after_and_never_a_hang(
    endpoints: Endpoints, database_name: str
) -> None:
    down = Endpoints("mongodb://127.0.0.1:9/", endpoints.livekit_url, "devkey", "secret")
    settings = admin_settings(
        down, database_name, mongo_timeout_ms=500, admin_api_bootstrap_key="boot-key-123456"
    )
    async with running_app(settings) as (_, api):
        assert (await api.get("/healthz")).status_code == 200
        for path in ("/readyz", "/api/v1/agents"):
            started = time.monotonic()
            response = await api.get(path, headers={"Authorization": "Bearer boot-key-123456"})
            assert time.monotonic() - started < 5.0
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "urn:switchboard:problem:database-unavailable"
            assert "Traceback" not in response.text


async def test_cors_allows_configured_origins_only(
    endpoints: Endpoints, database_name: str, keys: Keys
) -> None:
    settings = admin_settings(
        endpoints, database_name, admin_api_cors_origins="https://app.example.com"
    )
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with running_app(settings) as (_, api):
        allowed = await api.options(
            "/api/v1/token", headers=preflight | {"Origin": "https://app.example.com"}
        )
        refused = await api.options(
            "/api/v1/token", headers=preflight | {"Origin": "https://evil.example"}
        )
        simple = await api.get(
            "/api/v1/agents", headers=keys.header("viewer") | {"Origin": "https://app.example.com"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "etag" in simple.headers["access-control-expose-headers"].lower()


async def test_unknown_paths_and_methods_are_problems(api: httpx.AsyncClient, keys: Keys) -> None:
    missing = await api.get("/api/v1/nothing")
    assert (
        missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    )
    wrong = await api.patch("/api/v1/routing", headers=keys.header("admin"))
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


async def test_openapi_and_docs_are_served(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert "Problem" in spec["components"]["schemas"]
    assert spec["paths"]["/api/v1/agents/{agent_id}"]["put"]["responses"]["412"]["content"]
    assert (await api.get("/docs")).status_code == 200
