"""Logging in with an API key: refused keys say so, a good key shows who you are, and the key
lives only for the browser session."""

import time

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.console.conftest import AdminApiServer, ConsoleKeys, Metrics, log_in, save_screenshot


async def test_a_bad_key_is_refused_and_a_good_key_shows_who_is_logged_in(
    page: Page, console_url: str, keys: ConsoleKeys, metrics: Metrics
) -> None:
    started = time.monotonic()
    await page.goto(console_url)
    await expect(page.get_by_test_id("api-key")).to_be_editable()
    metrics.record(
        "login page ready (navigation -> key field usable)", (time.monotonic() - started) * 1000
    )
    navigation = await page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {dom: n.domContentLoadedEventEnd, load: n.loadEventEnd}; })()"
    )
    metrics.record("login page DOMContentLoaded (Navigation Timing)", navigation["dom"])
    await save_screenshot(page, "login")

    await page.get_by_test_id("api-key").fill("sk-this-key-does-not-exist")
    await page.get_by_test_id("login").click()
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await expect(page.get_by_test_id("whoami")).to_have_count(0)

    await page.get_by_test_id("api-key").fill(keys.admin)
    await page.get_by_test_id("login").click()
    await expect(page.get_by_test_id("whoami")).to_contain_text("console-admin")
    await expect(page.get_by_test_id("role")).to_have_text("admin")

    started = time.monotonic()
    await page.goto(console_url + "#/agents")
    await page.reload()
    # the four built-in types (other tests add types of their own, archived or not)
    await expect(
        page.locator('[data-testid="agent-row"][data-agent-id$="-agent-v1"]')
    ).to_have_count(4)
    metrics.record(
        "agents list ready after login (reload -> 4 rows)", (time.monotonic() - started) * 1000
    )


async def test_a_viewer_key_logs_in_as_viewer(
    page: Page, console_url: str, keys: ConsoleKeys
) -> None:
    await log_in(page, console_url, keys.viewer)
    await expect(page.get_by_test_id("whoami")).to_contain_text("console-viewer")
    await expect(page.get_by_test_id("role")).to_have_text("viewer")


async def test_the_key_is_gone_when_the_browser_session_ends(
    browser: Browser,
    context: BrowserContext,
    page: Page,
    console_url: str,
    keys: ConsoleKeys,
    admin_api_server: AdminApiServer,
) -> None:
    await log_in(page, console_url, keys.admin)
    await page.reload()  # the same session keeps the key
    await expect(page.get_by_test_id("whoami")).to_be_visible()
    assert keys.admin not in str(await context.storage_state())  # no cookie or localStorage copy
    await context.close()

    reopened = await browser.new_context(base_url=admin_api_server.base_url)
    try:
        later = await reopened.new_page()
        await later.goto(console_url)
        await expect(later.get_by_test_id("api-key")).to_be_visible()
        await expect(later.get_by_test_id("whoami")).to_have_count(0)
    finally:
        await reopened.close()


async def test_logging_out_forgets_the_key(page: Page, console_url: str, keys: ConsoleKeys) -> None:
    await log_in(page, console_url, keys.admin)
    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("api-key")).to_be_visible()
    await page.reload()
    await expect(page.get_by_test_id("api-key")).to_be_visible()
    assert await page.evaluate("Object.keys(sessionStorage).length") == 0
