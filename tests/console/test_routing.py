"""Routing in the console: the chain shown and edited, a live preview of what a metadata sample
gets, a refused chain written nowhere; and the playground's "route me" preview."""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import ConsoleKeys, log_in, save_screenshot


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
        restored = await api.put("/routing", json={"chain": before["chain"]}, headers={"If-Match": etag})
        assert restored.status_code == 200, restored.text


def with_default(chain: list[dict[str, Any]], agent_id: str) -> list[dict[str, Any]]:
    return [
        entry | {"params": {"agent_id": agent_id}} if entry["strategy"] == "default" else entry for entry in chain
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
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient, rules_restored: dict[str, Any]
) -> None:
    await log_in(page, console_url, keys.admin, "#/routing")
    await expect(page.get_by_test_id("chain-entry")).to_have_count(len(rules_restored["chain"]))
    await preview(page, {"purpose": "sales", "user_id": "console-u-routing"})
    result = page.get_by_test_id("preview-result")
    await expect(result).to_have_attribute("data-agent-id", "sales-agent-v1")
    await expect(page.locator('[data-testid="preview-step"][data-strategy="purpose"]')).to_have_attribute(
        "data-outcome", "chosen"
    )
    await save_screenshot(page, "routing")

    refused_chain = with_default(rules_restored["chain"], "no-such-agent-v1")
    await replace_rules_text(page, {"chain": refused_chain})
    await page.get_by_test_id("rules-save").click()
    errors = page.get_by_test_id("rules-error")
    await expect(errors).to_contain_text("no-such-agent-v1")
    named_field = errors.locator("[data-field]").first
    await expect(named_field).to_have_attribute("data-field", re.compile(r"^chain\.\d+\.params"))
    assert (await stored_rules(api))[0] == rules_restored

    await replace_rules_text(page, {"chain": with_default(rules_restored["chain"], "onboarding-agent-v1")})
    await page.get_by_test_id("rules-save").click()
    await expect(page.get_by_test_id("rules-saved")).to_be_visible()
    saved, _ = await stored_rules(api)
    assert saved["version"] == rules_restored["version"] + 1
    assert saved["chain"] == with_default(rules_restored["chain"], "onboarding-agent-v1")
    await preview(page, {"user_id": "console-u-routing-2"})
    await expect(result).to_have_attribute("data-agent-id", "onboarding-agent-v1")


async def test_the_playground_previews_where_route_me_would_go(
    page: Page, console_url: str, keys: ConsoleKeys
) -> None:
    await log_in(page, console_url, keys.admin, "#/playground")
    await page.get_by_test_id("agent-select").select_option("")
    metadata = {"purpose": "interview", "user_id": "console-u-route"}
    await page.get_by_test_id("metadata-input").fill(json.dumps(metadata))
    await page.get_by_test_id("resolve-button").click()
    await expect(page.get_by_test_id("resolve-result")).to_have_attribute("data-agent-id", "pte-interview-agent-v1")
    await expect(page.get_by_test_id("resolve-trail")).to_contain_text("purpose")
