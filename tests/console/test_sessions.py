"""A session held in the playground, then read back in the sessions pages: found by its user,
its routing trail, transcript, turn with fields and latency, summary, usage and end reason; and
the agent type's stats."""

import re
import uuid

import pytest
from playwright.async_api import Page, expect

from agent_configs.models import SYSTEM_RESPONSE
from tests.console.conftest import ConsoleKeys, built_in_configs, log_in, save_screenshot
from tests.console.playground import (
    expect_turn_with_fields,
    join_by_text_and_get_greeted,
    leave_and_expect_summary,
    send,
    wait_for_reply,
)

AGENT_ID = "support-agent-v1"
MESSAGE = "My invoice shows a charge twice this month, can you check it?"


@pytest.mark.timeout(600)
async def test_a_playground_session_is_listed_and_shown_with_its_record(
    page: Page, console_url: str, keys: ConsoleKeys
) -> None:
    user_id = f"console-u-{uuid.uuid4().hex[:8]}"
    required = [f.name for f in built_in_configs()[AGENT_ID].turn_schema.fields if f.required]
    await log_in(page, console_url, keys.admin, "#/playground")
    await join_by_text_and_get_greeted(page, AGENT_ID, {"user_id": user_id})
    await send(page, MESSAGE)
    await wait_for_reply(page, replies_before=1)
    await expect_turn_with_fields(page, required)
    summary = await leave_and_expect_summary(page)

    await page.goto(console_url + f"#/sessions?user={user_id}")
    row = page.get_by_test_id("session-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "ended")
    await expect(page.get_by_test_id("filter-user")).to_have_value(user_id)
    session_id = await row.get_attribute("data-session-id")
    await page.goto(console_url + "#/sessions")
    await expect(
        page.locator(f'[data-testid="session-row"][data-session-id="{session_id}"]')
    ).to_be_visible()
    await save_screenshot(page, "sessions-list")

    await page.goto(console_url + f"#/sessions?user={user_id}")
    await row.click()
    detail = page.get_by_test_id("session-detail")
    await expect(detail).to_have_attribute("data-session-id", session_id)
    await expect(detail).to_have_attribute("data-status", "ended")
    await expect(page.get_by_test_id("session-agent-link")).to_have_text(AGENT_ID)
    await expect(page.locator('[data-testid="trail-step"][data-strategy="pinned"]')).to_be_visible()
    transcript = page.get_by_test_id("session-transcript")
    await expect(
        transcript.locator('[data-testid="session-line"][data-role="user"]')
    ).to_contain_text(MESSAGE)
    await expect(
        transcript.locator('[data-testid="session-line"][data-role="agent"]')
    ).to_have_count(2)
    turn = page.locator('[data-testid="session-turn"][data-turn-index="0"]')
    for name in required:
        if name == SYSTEM_RESPONSE:  # the reply is the turn's agent line here, not a field
            continue
        await expect(
            turn.locator(f'[data-testid="turn-field"][data-field="{name}"]')
        ).to_have_count(1)
    await expect(turn.get_by_test_id("session-latency")).to_have_attribute(
        "data-first-ms", re.compile(r"^\d+$")
    )
    await expect(page.get_by_test_id("session-summary")).to_contain_text(summary.strip()[:40])
    await expect(page.get_by_test_id("session-usage")).to_be_visible()
    await expect(page.get_by_test_id("session-end-reason")).to_have_attribute(
        "data-reason", re.compile(r"\w+")
    )
    await save_screenshot(page, "session-detail")

    await page.get_by_test_id("session-agent-link").click()
    await page.get_by_test_id("tab-stats").click()
    await expect(page.get_by_test_id("agent-stats")).to_be_visible()
    await expect(
        page.locator('[data-testid="stats-chart"][data-field="issue_category"]')
    ).to_be_visible()
    await save_screenshot(page, "agent-stats")
