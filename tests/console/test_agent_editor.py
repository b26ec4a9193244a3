"""Editing agent types in the console: a saved greeting is what the next session says, an
invalid edit is shown next to its field and writes nothing, a stale save is a conflict, and a
viewer's save is refused by the API. Every outcome is checked from outside, through the API."""

import re
import uuid

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.console.conftest import ConsoleKeys, agent_config, log_in, save_screenshot
from tests.console.playground import end_session, join_by_text_and_get_greeted


async def open_editor(page: Page) -> None:
    await page.get_by_test_id("tab-edit").click()
    await expect(page.get_by_test_id("field-greeting")).to_be_editable()


async def test_a_greeting_saved_in_the_editor_is_what_the_next_session_says(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    agent_id = "sales-agent-v1"
    before = await agent_config(api, agent_id)
    greeting = (
        f"Welcome to the sales desk, reference {uuid.uuid4().hex[:6]}. What are you looking for?"
    )

    await log_in(page, console_url, keys.admin, f"#/agents/{agent_id}")
    await open_editor(page)
    await page.get_by_test_id("field-greeting").fill(greeting)
    await expect(page.get_by_test_id("dirty")).to_be_visible()
    await save_screenshot(page, "agent-editor")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_test_id("save-ok")).to_have_attribute(
        "data-version", str(before["version"] + 1)
    )

    after = await agent_config(api, agent_id)
    assert (after["version"], after["greeting"]) == (before["version"] + 1, greeting)
    assert (
        after["instructions"] == before["instructions"]
    )  # the form sent back what it did not touch

    await page.get_by_test_id("tab-versions").click()
    await expect(
        page.locator(f'[data-testid="version-row"][data-version="{after["version"]}"]')
    ).to_be_visible()
    await page.get_by_test_id("diff-from").select_option(str(before["version"]))
    await page.get_by_test_id("diff-to").select_option(str(after["version"]))
    diff = page.get_by_test_id("diff")
    await expect(diff).to_contain_text(greeting)
    await expect(diff).to_have_attribute("data-added", re.compile(r"^[1-9]\d*$"))
    await save_screenshot(page, "agent-versions-diff")

    await page.goto(console_url + "#/playground")
    spoken = await join_by_text_and_get_greeted(page, agent_id)
    await expect(spoken).to_contain_text(greeting)
    await end_session(page)


@pytest.mark.parametrize(
    ("field", "value"),
    [("instructions", "Be brief."), ("greeting", "Hello! " * 300)],  # min 20 / max 2000 characters
)
async def test_an_invalid_edit_shows_the_error_at_its_field_and_writes_nothing(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient, field: str, value: str
) -> None:
    agent_id = "onboarding-agent-v1"
    before = await agent_config(api, agent_id)
    await log_in(page, console_url, keys.admin, f"#/agents/{agent_id}")
    await open_editor(page)
    await page.get_by_test_id(f"field-{field}").fill(value)
    await page.get_by_test_id("save").click()

    error = page.locator(f'[data-testid="field-error"][data-field="{field}"]')
    await expect(error).to_be_visible()
    await expect(error).not_to_have_text(re.compile(r"^\s*$"))
    await expect(page.get_by_test_id("save-ok")).to_have_count(0)
    assert await agent_config(api, agent_id) == before


async def test_the_second_of_two_tabs_saving_the_same_version_sees_the_conflict(
    context: BrowserContext, page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    agent_id = "pte-interview-agent-v1"
    before = await agent_config(api, agent_id)
    first, second = page, await context.new_page()
    for tab in (first, second):  # sessionStorage is per tab: each logs in, as a user would
        await log_in(tab, console_url, keys.admin, f"#/agents/{agent_id}")
        await open_editor(tab)
    await first.get_by_test_id("field-greeting").fill("First tab's greeting: let's practise.")
    await second.get_by_test_id("field-greeting").fill("Second tab's greeting: ready when you are.")

    await first.get_by_test_id("save").click()
    await expect(first.get_by_test_id("save-ok")).to_be_visible()
    await second.get_by_test_id("save").click()
    conflict = second.get_by_test_id("conflict")
    await expect(conflict).to_be_visible()
    await expect(conflict).to_have_attribute("data-current-version", str(before["version"] + 1))
    await expect(second.get_by_test_id("conflict-actor")).to_contain_text("console-admin")
    await expect(second.get_by_test_id("conflict-compare")).to_be_visible()
    await save_screenshot(second, "agent-editor-conflict")

    saved = await agent_config(api, agent_id)
    assert (saved["version"], saved["greeting"]) == (
        before["version"] + 1,
        "First tab's greeting: let's practise.",
    )
    await second.get_by_test_id("conflict-reload").click()
    await expect(second.get_by_test_id("field-greeting")).to_have_value(
        "First tab's greeting: let's practise."
    )
    await expect(second.get_by_test_id("conflict")).to_have_count(0)


async def test_a_viewer_cannot_save_and_the_console_says_the_api_refused(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    agent_id = "support-agent-v1"
    before = await agent_config(api, agent_id)
    await log_in(page, console_url, keys.viewer, f"#/agents/{agent_id}")
    await page.get_by_test_id("tab-edit").click()
    await expect(page.get_by_test_id("read-only-note")).to_be_visible()
    await page.get_by_test_id("save").click()

    refused = page.get_by_test_id("save-error")
    await expect(refused).to_have_attribute("data-status", "403")
    await expect(refused).to_contain_text(re.compile(r"admin", re.IGNORECASE))
    await save_screenshot(page, "agent-editor-viewer-refused")
    await page.get_by_test_id("pause").click()
    await expect(page.get_by_test_id("action-error")).to_contain_text(
        re.compile(r"admin", re.IGNORECASE)
    )
    await expect(page.get_by_test_id("status")).to_have_attribute("data-status", "active")
    assert await agent_config(api, agent_id) == before
