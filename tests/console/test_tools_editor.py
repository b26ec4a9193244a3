"""Editing an agent type's tools in the console's form: a tool whose host the egress policy
refuses is shown at its URL field and writes nothing; a loopback tool saves and reads back
through the API as the form built it."""

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import ConsoleKeys, agent_config, log_in, save_screenshot

NOT_AUTHORED = ("version", "status", "created_at", "updated_at")


@pytest.fixture
async def agent_id(api: httpx.AsyncClient) -> str:
    """A copy of the built-in support type of its own, so the tools added here reach no other
    test's sessions."""
    support = await agent_config(api, "support-agent-v1")
    copy_id = f"tools-editor-{uuid.uuid4().hex[:8]}"
    definition: dict[str, Any] = {k: v for k, v in support.items() if k not in NOT_AUTHORED}
    definition |= {"agent_id": copy_id, "name": f"Tools editor {copy_id[-8:]}"}
    created = await api.post("/agents", json=definition)
    assert created.status_code == 201, created.text
    return copy_id


async def add_http_tool(page: Page, url: str) -> None:
    """Add an http tool to the open editor and point it at `url` (the form's defaults fill the
    rest: a name, a description and an `order_id` parameter the URL can use)."""
    await page.get_by_test_id("add-tool").click()
    await page.get_by_test_id("add-tool-http").click()
    row = page.locator('[data-testid="tool-row"][data-kind="http"]').last
    await expect(row).to_be_visible()
    index = await page.get_by_test_id("tool-row").count() - 1
    await page.get_by_test_id(f"field-tools.{index}.name").fill("lookup_order")
    await page.get_by_test_id(f"field-tools.{index}.url").fill(url)


async def open_editor(page: Page, console_url: str, keys: ConsoleKeys, agent_id: str) -> None:
    await log_in(page, console_url, keys.admin, f"#/agents/{agent_id}")
    await page.get_by_test_id("tab-edit").click()
    await expect(page.get_by_test_id("tools-editor")).to_be_visible()


async def test_a_tool_url_the_egress_policy_refuses_is_shown_at_the_url_and_nothing_is_saved(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient, agent_id: str
) -> None:
    before = await agent_config(api, agent_id)
    index = len(before.get("tools") or [])
    await open_editor(page, console_url, keys, agent_id)
    await add_http_tool(page, "https://example.com/orders/{order_id}")
    await page.get_by_test_id("save").click()

    error = page.locator(f'[data-testid="field-error"][data-field="tools.{index}.url"]')
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(
        re.compile(r"example\.com|egress|not allowed|refused", re.IGNORECASE)
    )
    # next to the URL: in the same field as the input it names
    field = page.locator(".field", has=page.get_by_test_id(f"field-tools.{index}.url"))
    await expect(field.locator('[data-testid="field-error"]')).to_have_count(1)
    await expect(page.get_by_test_id("save-ok")).to_have_count(0)
    await save_screenshot(page, "tools-editor-refused-host")
    assert await agent_config(api, agent_id) == before


async def test_a_loopback_http_tool_saves_and_reads_back_as_the_form_built_it(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient, agent_id: str
) -> None:
    before = await agent_config(api, agent_id)
    index = len(before.get("tools") or [])
    await open_editor(page, console_url, keys, agent_id)
    await add_http_tool(page, "http://127.0.0.1:9/orders/{order_id}?session={session_id}")
    parameters = page.get_by_test_id(f"field-tools.{index}.parameters")
    await parameters.fill('{"type": "object", "properties": {')
    parse_error = page.locator(
        f'[data-testid="field-error"][data-field="tools.{index}.parameters"]'
    )
    await expect(parse_error).to_contain_text("JSON")  # shown while typing, before any save
    await parameters.fill(
        '{"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}'
    )
    await expect(parse_error).to_have_count(0)
    await page.get_by_test_id("add-header").click()
    header = page.get_by_test_id("header-row").last
    await header.get_by_test_id("header-name").fill("X-Session")
    await header.get_by_test_id("header-source").select_option("session")
    await page.get_by_test_id(f"field-tools.{index}.headers.X-Session.session").select_option(
        "session_id"
    )
    await page.get_by_test_id(f"field-tools.{index}.waiting_message").fill(
        "One moment, I am looking that up."
    )
    await save_screenshot(page, "tools-editor-http")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_test_id("save-ok")).to_have_attribute(
        "data-version", str(before["version"] + 1)
    )

    saved = await agent_config(api, agent_id)
    tool = saved["tools"][index]
    assert tool["kind"] == "http"
    assert tool["name"] == "lookup_order"
    assert tool["method"] == "GET"
    assert tool["url"] == "http://127.0.0.1:9/orders/{order_id}?session={session_id}"
    assert tool["parameters"]["properties"] == {"order_id": {"type": "string"}}
    assert {source: v for source, v in tool["headers"]["X-Session"].items() if v is not None} == {
        "session": "session_id"
    }
    assert tool["waiting_message"] == "One moment, I am looking that up."
    assert saved["tools"][:index] == (before.get("tools") or [])
    assert (
        saved["instructions"] == before["instructions"]
    )  # the form sent back what it did not touch

    await page.reload()
    await page.get_by_test_id("tab-edit").click()
    row = page.locator('[data-testid="tool-row"][data-kind="http"]').nth(index)
    await expect(row).to_have_attribute("data-tool-name", "lookup_order")
    await expect(page.get_by_test_id(f"field-tools.{index}.url")).to_have_value(tool["url"])
