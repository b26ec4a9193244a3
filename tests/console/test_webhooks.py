"""Webhook subscriptions in the console: an admin creates one to a loopback URL (which the test
stack's egress policy allows: EGRESS_HOSTS is unset, so loopback only), sees its signing secret
exactly once, queues a test event and pauses it; a URL the policy refuses is shown at the URL
field and nothing is created; a viewer's create is refused by the API. The console stack runs
no dispatcher, so the test event is checked where the admin API puts it: the outbox."""

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
from playwright.async_api import Page, expect
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.cloudevents import OUTBOX, SUBSCRIPTIONS
from tests.console.conftest import ConsoleKeys, log_in, save_screenshot

OUTBOX_TIMEOUT_S = 10.0
"""The admin API's outbox writer buffers: its write lands within moments, not at the 202."""

SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")


def loopback_url() -> str:
    """A receiver address no other test uses (nothing listens: no dispatcher sends to it)."""
    return f"http://127.0.0.1:9/hooks/{uuid.uuid4().hex[:12]}"


async def subscriptions_to(api: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await api.get("/webhooks", params={"limit": 200})
    assert response.status_code == 200, response.text
    return [s for s in response.json()["items"] if s["url"] == url]


async def outbox_event(database: AsyncDatabase, event_id: str) -> dict[str, Any]:
    """The outbox document once the admin API's writer has flushed it."""
    deadline = time.monotonic() + OUTBOX_TIMEOUT_S
    while (event := await database[OUTBOX].find_one({"_id": event_id})) is None:
        assert time.monotonic() < deadline, f"{event_id} never reached the outbox"
        await asyncio.sleep(0.1)
    return event


async def open_new_subscription_form(page: Page, url: str) -> None:
    await page.get_by_test_id("webhooks-new").click()
    await expect(page.get_by_test_id("webhook-form")).to_be_visible()
    await page.get_by_test_id("webhook-url").fill(url)
    await page.get_by_test_id("webhook-description").fill("console test receiver")


async def test_an_admin_creates_a_subscription_sees_its_secret_once_sends_a_test_event_and_pauses_it(
    page: Page,
    console_url: str,
    keys: ConsoleKeys,
    api: httpx.AsyncClient,
    console_database: AsyncDatabase,
) -> None:
    url = loopback_url()
    await log_in(page, console_url, keys.admin, "#/webhooks")
    await open_new_subscription_form(page, url)
    await page.get_by_test_id("webhook-save").click()

    await expect(page.get_by_test_id("webhook-secret-dialog")).to_be_visible()
    secret = (await page.get_by_test_id("webhook-secret").inner_text()).strip()
    assert SECRET.match(secret), secret
    (created,) = await subscriptions_to(api, url)
    row = page.locator(f'[data-testid="webhook-row"][data-subscription-id="{created["id"]}"]')
    await expect(row).to_have_attribute("data-status", "enabled")  # listed behind the dialog
    await save_screenshot(page, "webhooks")

    # Shown once: stored only encrypted, never answered again, gone from the page after a reload.
    stored = await console_database[SUBSCRIPTIONS].find_one({"_id": created["id"]})
    assert stored is not None and secret not in repr(stored)
    assert created["signing_secret"]["kind"] == "generated" and secret.startswith(
        created["signing_secret"]["prefix"]
    )
    await page.get_by_test_id("webhook-secret-done").click()
    detail = page.get_by_test_id("webhook-detail")
    await expect(detail).to_have_attribute("data-subscription-id", created["id"])
    await page.reload()
    await expect(detail).to_have_attribute("data-subscription-id", created["id"])
    await expect(page.get_by_test_id("webhook-signing-current")).to_have_attribute(
        "data-kind", "generated"
    )
    assert secret not in await page.content()
    assert secret not in (await api.get(f"/webhooks/{created['id']}")).text

    await page.get_by_test_id("webhook-test").click()
    sent = page.get_by_test_id("webhook-test-sent")
    await expect(sent).to_contain_text("queued")
    event_id = await sent.get_attribute("data-event-id")
    assert event_id
    event = await outbox_event(console_database, event_id)
    assert (event["type"], event["target_subscription_id"], event["subject"]) == (
        "webhook.test",
        created["id"],
        created["id"],
    )
    assert event["data"]["subscription_id"] == created["id"]

    await page.get_by_test_id("webhook-pause").click()
    await expect(detail).to_have_attribute("data-status", "paused")
    await expect(page.get_by_test_id("webhook-resume")).to_be_visible()
    after = (await api.get(f"/webhooks/{created['id']}")).json()
    assert (after["status"], after["version"]) == ("paused", created["version"] + 1)


async def test_a_url_the_egress_policy_refuses_is_shown_at_the_url_field_and_nothing_is_created(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    url = "https://example.com/hook"
    await log_in(page, console_url, keys.admin, "#/webhooks")
    await open_new_subscription_form(page, url)
    await page.get_by_test_id("webhook-save").click()

    error = page.locator('[data-testid="field-error"][data-field="url"]')
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("example.com")
    await expect(page.get_by_test_id("webhook-form")).to_be_visible()  # still open, to be corrected
    await expect(page.get_by_test_id("webhook-secret-dialog")).to_have_count(0)
    assert await subscriptions_to(api, url) == []


async def test_a_viewer_cannot_create_a_subscription(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    url = loopback_url()
    await log_in(page, console_url, keys.viewer, "#/webhooks")
    await expect(page.get_by_test_id("webhooks-read-only-note")).to_be_visible()
    await open_new_subscription_form(page, url)
    await page.get_by_test_id("webhook-save").click()

    refused = page.get_by_test_id("webhook-form-error")
    await expect(refused).to_be_visible()
    await expect(refused).to_contain_text("Not allowed for this API key")  # the API's 403
    await expect(page.get_by_test_id("webhook-secret-dialog")).to_have_count(0)
    assert await subscriptions_to(api, url) == []
