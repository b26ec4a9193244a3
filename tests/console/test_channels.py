"""Channel bindings in the console: an admin's Telegram binding naming LIVEKIT_API_SECRET as its
token is refused at that field (the egress policy never sends a Switchboard credential) and
nothing is created; a website widget binding made in the same form is listed with its status
and its day's counts, its page shows the generated publishable key (the API's, read-only) in a
copy-paste script tag, and Disable turns it off through the API. The pages pass axe-core."""

import uuid

import httpx
from playwright.async_api import Page, expect

from tests.console.accessibility import (
    assert_no_blocking_violations,
    audit_page,
    enable_axe,
    new_audit,
)
from tests.console.conftest import ConsoleKeys, log_in, save_screenshot


async def test_an_admin_creates_a_widget_binding_sees_it_listed_and_a_refused_token_at_its_field(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    binding_id = f"console-widget-{uuid.uuid4().hex[:8]}"
    audit = new_audit()
    await enable_axe(page)
    await log_in(page, console_url, keys.admin, "#/channels")
    await expect(
        page.get_by_test_id("channel-row").first.or_(page.get_by_test_id("channels-empty"))
    ).to_be_visible()
    await audit_page(page, audit, "channels")

    await page.get_by_test_id("channels-new").click()
    form = page.get_by_test_id("channel-form")
    await page.get_by_test_id("channel-id").fill(f"{binding_id}-bot")
    await page.get_by_test_id("channel-agent-id").fill("support-agent-v1")
    await page.get_by_test_id("channel-telegram-token-env").fill("LIVEKIT_API_SECRET")
    await page.get_by_test_id("channel-save").click()
    refused = form.locator('[data-testid="field-error"][data-field="telegram.token_env"]')
    await expect(refused).to_contain_text("LIVEKIT_API_SECRET")
    await audit_page(page, audit, "channel-form")
    assert (await api.get(f"/channels/{binding_id}-bot")).status_code == 404

    await page.get_by_test_id("channel-id").fill(binding_id)
    await page.get_by_test_id("channel-kind").select_option("widget")
    await page.get_by_test_id("channel-widget-origins").fill("https://shop.example")
    await page.get_by_test_id("channel-save").click()
    await expect(form).to_be_hidden()
    row = page.locator(f'[data-testid="channel-row"][data-binding-id="{binding_id}"]')
    await expect(row).to_have_attribute("data-enabled", "true")
    await expect(row.get_by_test_id("channel-counts")).to_have_attribute("data-processed", "0")
    await save_screenshot(page, "channels")

    await row.locator("a").click()
    detail = page.get_by_test_id("channel-detail")
    await expect(detail).to_have_attribute("data-binding-id", binding_id)
    stored = (await api.get(f"/channels/{binding_id}")).json()
    key = stored["widget"]["publishable_key"]
    assert key.startswith("pk_")
    await expect(page.get_by_test_id("channel-publishable-key")).to_have_value(key)
    origin = console_url.removesuffix("/console/")
    await expect(page.get_by_test_id("channel-snippet")).to_have_value(
        f'<script src="{origin}/widget.js" data-key="{key}" async></script>'
    )
    await expect(page.get_by_test_id("channel-traffic-empty")).to_be_visible()
    await audit_page(page, audit, "channel-detail")
    await save_screenshot(page, "channel-detail")

    await page.get_by_test_id("channel-toggle").click()
    await expect(detail).to_have_attribute("data-enabled", "false")
    assert (await api.get(f"/channels/{binding_id}")).json()["enabled"] is False
    assert_no_blocking_violations(audit)
