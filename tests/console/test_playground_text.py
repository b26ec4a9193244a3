"""Each built-in agent type in the playground by text: the type's own greeting, a reply, the
turn's fields and latency, and the summary once the user leaves."""

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import (
    ConsoleKeys,
    Metrics,
    agent_config,
    built_in_configs,
    log_in,
    save_screenshot,
)
from tests.console.playground import (
    MODEL_REPLIES_MS,
    expect_agent_state,
    expect_turn_with_fields,
    join_by_text_and_get_greeted,
    leave_and_expect_summary,
    send,
    wait_for_reply,
)

FIRST_MESSAGES = {
    "support-agent-v1": "I cannot log in to my account, the password reset email never arrives.",
    "sales-agent-v1": "We are a team of twenty. What would your business plan cost us?",
    "onboarding-agent-v1": "I just signed up. How do I create my first project?",
    "pte-interview-agent-v1": "I am ready to practise for the speaking part of my PTE exam.",
}


def required_fields(agent_id: str) -> list[str]:
    return [f.name for f in built_in_configs()[agent_id].turn_schema.fields if f.required]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("agent_id", list(FIRST_MESSAGES))
async def test_each_built_in_type_greets_replies_fills_its_turn_and_sums_up_by_text(
    page: Page,
    console_url: str,
    keys: ConsoleKeys,
    api: httpx.AsyncClient,
    metrics: Metrics,
    agent_id: str,
) -> None:
    greeting_text = (await agent_config(api, agent_id))["greeting"]
    await log_in(page, console_url, keys.admin, "#/playground")
    greeting = await join_by_text_and_get_greeted(page, agent_id)
    await expect(greeting).to_contain_text(greeting_text)
    await expect(page.get_by_test_id("model-notice")).to_be_visible()

    await send(page, FIRST_MESSAGES[agent_id])
    await wait_for_reply(page, replies_before=1)
    turn = await expect_turn_with_fields(page, required_fields(agent_id))
    first_ms = await turn.get_by_test_id("turn-latency").get_attribute("data-first-ms")
    metrics.record(
        f"text {agent_id}: message sent -> first reply text (browser)", float(first_ms or "nan")
    )
    await expect_agent_state(page, "listening", MODEL_REPLIES_MS)
    if agent_id == "support-agent-v1":
        await save_screenshot(page, "playground-mid-conversation")

    await leave_and_expect_summary(page)
