"""Routing in the console: the chain shown and edited, a live preview of what a metadata sample
gets, a refused chain written nowhere; and the playground's "route me" preview."""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from tests.console.conftest import ConsoleKeys, log_in, save_screenshot
from tests.loopback import serve


async def stored_rules(api: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    response = await api.get("/routing")
    assert response.status_code == 200, response.text
    return response.json(), response.headers["ETag"]


@pytest.fixture
async def rules_restored(api: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """The chain as it was before the test, put back afterwards: other tests route with it."""
    before, _ = await stored_rules(api)
    yield before
    current, etag = await stored_rules(api)
    if current["chain"] != before["chain"]:
        restored = await api.put(
            "/routing", json={"chain": before["chain"]}, headers={"If-Match": etag}
        )
        assert restored.status_code == 200, restored.text


def with_default(chain: list[dict[str, Any]], agent_id: str) -> list[dict[str, Any]]:
    return [
        entry | {"params": {"agent_id": agent_id}} if entry["strategy"] == "default" else entry
        for entry in chain
    ]


async def preview(page: Page, metadata: dict[str, Any]) -> None:
    await page.get_by_test_id("preview-metadata").fill(json.dumps(metadata))


async def replace_rules_text(page: Page, rules: dict[str, Any]) -> None:
    """The whole document replaced the way a user pasting would: CodeMirror renders only the
    lines in view, so `fill` (which selects the DOM's text) could leave the rest behind."""
    editor = page.get_by_test_id("rules-editor")
    await editor.click()
    await page.keyboard.press("ControlOrMeta+a")
    await page.keyboard.insert_text(json.dumps(rules))
    await expect(page.get_by_test_id("rules-editor")).to_contain_text(json.dumps(rules)[:40])


async def test_the_chain_is_edited_with_a_live_preview_and_a_refused_chain_writes_nothing(
    page: Page,
    console_url: str,
    keys: ConsoleKeys,
    api: httpx.AsyncClient,
    rules_restored: dict[str, Any],
) -> None:
    await log_in(page, console_url, keys.admin, "#/routing")
    await expect(page.get_by_test_id("chain-entry")).to_have_count(len(rules_restored["chain"]))
    await preview(page, {"purpose": "sales", "user_id": "console-u-routing"})
    result = page.get_by_test_id("preview-result")
    await expect(result).to_have_attribute("data-agent-id", "sales-agent-v1")
    await expect(
        page.locator('[data-testid="preview-step"][data-strategy="purpose"]')
    ).to_have_attribute("data-outcome", "chosen")
    await save_screenshot(page, "routing")

    refused_chain = with_default(rules_restored["chain"], "no-such-agent-v1")
    await replace_rules_text(page, {"chain": refused_chain})
    await page.get_by_test_id("rules-save").click()
    errors = page.get_by_test_id("rules-error")
    await expect(errors).to_contain_text("no-such-agent-v1")
    named_field = errors.locator("[data-field]").first
    await expect(named_field).to_have_attribute("data-field", re.compile(r"^chain\.\d+\.params"))
    assert (await stored_rules(api))[0] == rules_restored

    await replace_rules_text(
        page, {"chain": with_default(rules_restored["chain"], "onboarding-agent-v1")}
    )
    await page.get_by_test_id("rules-save").click()
    await expect(page.get_by_test_id("rules-saved")).to_be_visible()
    saved, _ = await stored_rules(api)
    assert saved["version"] == rules_restored["version"] + 1
    assert saved["chain"] == with_default(rules_restored["chain"], "onboarding-agent-v1")
    await preview(page, {"user_id": "console-u-routing-2"})
    await expect(result).to_have_attribute("data-agent-id", "onboarding-agent-v1")


@pytest.fixture
async def routing_hook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The operator's routing service on loopback: it sends everyone to sales, with a plan."""
    asked: list[dict[str, Any]] = []

    async def route(request: web.Request) -> web.Response:
        asked.append(await request.json())
        return web.json_response(
            {"agent_id": "sales-agent-v1", "variables": {"plan": "gold", "credit": 12}}
        )

    app = web.Application()
    app.router.add_post("/tenant-7f3a/route", route)
    runner, port = await serve(app)
    try:
        yield f"http://127.0.0.1:{port}/tenant-7f3a/route", asked
    finally:
        await runner.cleanup()


async def test_a_webhook_strategy_shows_where_it_asks_and_the_preview_shows_the_variables_it_answered(
    page: Page,
    console_url: str,
    keys: ConsoleKeys,
    api: httpx.AsyncClient,
    rules_restored: dict[str, Any],
    routing_hook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, asked = routing_hook
    hook = {
        "strategy": "webhook",
        "params": {"url": url, "timeout_s": 2, "headers": {"X-Tenant": {"value": "acme"}}},
    }
    await log_in(page, console_url, keys.admin, "#/routing")
    await expect(page.get_by_test_id("chain-entry")).to_have_count(len(rules_restored["chain"]))
    await replace_rules_text(page, {"chain": [hook, *rules_restored["chain"]]})

    card = page.locator('[data-testid="chain-entry"][data-strategy="webhook"]')
    await expect(card.get_by_test_id("webhook-host")).to_have_text(url.split("/")[2])
    await expect(card).to_contain_text("X-Tenant")
    await expect(card).not_to_contain_text("tenant-7f3a")  # the host, not the path
    await preview(page, {"purpose": "support", "user_id": "console-u-hook"})
    webhook_step = page.locator('[data-testid="preview-step"][data-strategy="webhook"]')
    await expect(webhook_step).to_contain_text(
        "not called in a preview"
    )  # a draft's hook: only when asked
    await expect(page.get_by_test_id("preview-result")).to_have_attribute(
        "data-agent-id", "support-agent-v1"
    )
    assert asked == []

    await page.get_by_test_id("preview-call-hooks").check()
    await expect(page.get_by_test_id("preview-result")).to_have_attribute(
        "data-agent-id", "sales-agent-v1"
    )
    await expect(webhook_step).to_have_attribute("data-outcome", "chosen")
    variables = page.get_by_test_id("preview-variable")
    await expect(variables).to_have_count(2)
    await expect(
        page.locator('[data-testid="preview-variable"][data-name="plan"]')
    ).to_contain_text("gold")
    await expect(
        page.locator('[data-testid="preview-variable"][data-name="credit"]')
    ).to_contain_text("12")
    assert any(
        body.get("user_id") == "console-u-hook" for body in asked
    )  # the draft asked the real service
    assert (await stored_rules(api))[0] == rules_restored  # a preview writes nothing
    await save_screenshot(page, "routing-webhook")


async def test_the_playground_previews_where_route_me_would_go(
    page: Page, console_url: str, keys: ConsoleKeys
) -> None:
    await log_in(page, console_url, keys.admin, "#/playground")
    await page.get_by_test_id("agent-select").select_option("")
    metadata = {"purpose": "interview", "user_id": "console-u-route"}
    await page.get_by_test_id("metadata-input").fill(json.dumps(metadata))
    await page.get_by_test_id("resolve-button").click()
    await expect(page.get_by_test_id("resolve-result")).to_have_attribute(
        "data-agent-id", "pte-interview-agent-v1"
    )
    await expect(page.get_by_test_id("resolve-trail")).to_contain_text("purpose")
