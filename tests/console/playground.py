"""What a user does in the playground, as steps the tests share. The console's worker asks the
scripted model (conftest: console_llm), which answers at once; the waits for what a model
writes stay long (voice: Whisper and espeak-ng on a shared 2-core machine), the console's own
work gets seconds (UI_TIMEOUT_MS)."""

import json
import re
from typing import Any

from playwright.async_api import Locator, Page, expect

AGENT_JOINS_MS = 90_000
"""Dispatch, the job process, the session and the greeting: the worker tests wait as long."""
MODEL_REPLIES_MS = 150_000
"""A reply and its fields (a voice turn hears and speaks too) on 2 busy cores."""
SUMMARY_MS = 150_000
"""The worker finishes the turns (<= 30 s) and writes the summary (one more model call)."""
WHOLE_MILLISECONDS = re.compile(r"^\d+$")


def agent_lines(page: Page) -> Locator:
    return page.locator('[data-testid="transcript-line"][data-role="agent"]')


def user_lines(page: Page) -> Locator:
    return page.locator('[data-testid="transcript-line"][data-role="user"]')


async def pick_agent(page: Page, agent_id: str) -> None:
    await expect(
        page.get_by_test_id("agent-select").locator(f'option[value="{agent_id}"]')
    ).to_be_attached()
    await page.get_by_test_id("agent-select").select_option(agent_id)


async def join_by_text_and_get_greeted(
    page: Page, agent_id: str, metadata: dict[str, Any] | None = None
) -> Locator:
    """Pick `agent_id` (with room `metadata`), join by text; the agent's first line (its
    greeting) once it is final."""
    await pick_agent(page, agent_id)
    if metadata is not None:
        await page.get_by_test_id("metadata-input").fill(json.dumps(metadata))
    await page.get_by_test_id("join-text").click()
    await expect(page.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "connected"
    )
    greeting = agent_lines(page).first
    await expect(greeting).to_have_attribute("data-final", "true", timeout=AGENT_JOINS_MS)
    return greeting


async def expect_agent_state(page: Page, state: str, timeout_ms: float) -> None:
    await expect(page.get_by_test_id("agent-state")).to_have_attribute(
        "data-state", state, timeout=timeout_ms
    )


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("chat-input").fill(text)
    await page.get_by_test_id("chat-send").click()
    await expect(user_lines(page).filter(has_text=text)).to_have_count(1)


async def wait_for_reply(page: Page, replies_before: int) -> Locator:
    """The agent's next final line after `replies_before` agent lines."""
    reply = agent_lines(page).nth(replies_before)
    await expect(reply).to_have_attribute("data-final", "true", timeout=MODEL_REPLIES_MS)
    await expect(reply).not_to_have_text(re.compile(r"^\s*$"))
    return reply


async def expect_turn_with_fields(page: Page, required: list[str], index: int = 0) -> Locator:
    """The turn's card, once its fields arrived: every field in `required`, and the latency the
    user felt, as whole milliseconds."""
    turn = page.locator(f'[data-testid="turn"][data-turn-index="{index}"]')
    await expect(turn).to_be_visible(timeout=MODEL_REPLIES_MS)
    await expect(turn).to_have_attribute("data-status", "ok")
    for name in required:
        await expect(
            turn.locator(f'[data-testid="turn-field"][data-field="{name}"]')
        ).to_have_count(1)
    latency = turn.get_by_test_id("turn-latency")
    await expect(latency).to_have_attribute("data-first-ms", WHOLE_MILLISECONDS)
    await expect(latency).to_have_attribute("data-fields-ms", WHOLE_MILLISECONDS)
    return turn


async def end_session(page: Page) -> None:
    """End session: the agent finishes, summarizes and leaves, then the page leaves too."""
    await page.get_by_test_id("leave").click()
    await expect(page.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "disconnected", timeout=SUMMARY_MS
    )


async def leave_and_expect_summary(page: Page) -> str:
    """End the session; the page shows the summary the worker made of it."""
    await end_session(page)
    summary = page.get_by_test_id("summary")
    await expect(summary).to_have_text(re.compile(r"\w{3,}"))
    return await summary.inner_text()
