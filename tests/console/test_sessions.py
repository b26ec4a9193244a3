"""A session held in the playground, then read back in the sessions pages: found by its user and
by its room, its routing trail, transcript, turn with fields, latency waterfall, summary, usage,
cost, trace and end reason; and the agent type's stats. The pages in a session pass the axe-core
audit (the playground in the room and after it, the session page), and the focus goes somewhere
meaningful after Join and after End session (issue 19)."""

import asyncio
import re
import uuid

import httpx
import pytest
from playwright.async_api import Page, expect

from agent_configs.models import SYSTEM_RESPONSE
from tests.console.accessibility import (
    assert_no_blocking_violations,
    audit_page,
    enable_axe,
    focused_element,
    new_audit,
)
from tests.console.conftest import (
    ARTIFACTS,
    ConsoleKeys,
    built_in_configs,
    log_in,
    save_screenshot,
)
from tests.console.playground import (
    expect_turn_with_fields,
    join_by_text_and_get_greeted,
    leave_and_expect_summary,
    send,
    wait_for_reply,
)
from tests.worker.scripted_llm import REPLY

AGENT_ID = "support-agent-v1"
TRACE_ARRIVES_MS = 30_000
"""The worker exports spans in batches (every 5 s, the last at the session's end); the page
asks again every 3 s for 30 s after the end."""
MESSAGE = "My invoice shows a charge twice this month, can you check it?"


async def show_sessions(page: Page, console_url: str, filters: str) -> None:
    """The sessions list with `filters` (`?user=...`), once its rows are that filter's (until
    they arrive, the page keeps the last filter's rows)."""
    await page.goto(console_url + f"#/sessions{filters}")
    await expect(page.get_by_test_id("sessions")).to_have_attribute("data-shown-filters", filters)


@pytest.mark.timeout(600)
async def test_a_playground_session_is_listed_and_shown_with_its_record(
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    user_id = f"console-u-{uuid.uuid4().hex[:8]}"
    required = [f.name for f in built_in_configs()[AGENT_ID].turn_schema.fields if f.required]
    audit = new_audit()
    await enable_axe(page)
    await log_in(page, console_url, keys.admin, "#/playground")
    await join_by_text_and_get_greeted(page, AGENT_ID, {"user_id": user_id})
    # Join is disabled while the session runs: the focus went to the message box, not the body
    await expect(page.get_by_test_id("chat-input")).to_be_focused()
    await send(page, MESSAGE)
    await wait_for_reply(page, replies_before=1)
    turn_card = await expect_turn_with_fields(page, required)
    # the turn's waterfall (agent-turn `waterfall`): the origin, the model's request, the fields
    waterfall = turn_card.get_by_test_id("waterfall")
    await expect(
        waterfall.locator('[data-testid="waterfall-stage"][data-stage="message_received"]')
    ).to_have_attribute("data-kind", "point")
    await expect(
        waterfall.locator('[data-testid="waterfall-stage"][data-stage="llm"]').first
    ).to_have_attribute("data-kind", "bar")
    await expect(waterfall.get_by_test_id("waterfall-bar").first).to_be_visible()
    await audit_page(page, audit, "playground-in-session")
    await save_screenshot(page, "playground-waterfall")
    await waterfall.screenshot(path=str(ARTIFACTS / "playground-waterfall-turn.png"))
    summary = await leave_and_expect_summary(page)
    # End session went away with the session: the focus is on what says it ended
    await expect(page.get_by_test_id("session-ended")).to_be_focused()
    assert await focused_element(page) is not None
    await audit_page(page, audit, "playground-ended")

    await show_sessions(page, console_url, f"?user={user_id}")
    row = page.get_by_test_id("session-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "ended")
    await expect(page.get_by_test_id("filter-user")).to_have_value(user_id)
    session_id = await row.get_attribute("data-session-id")
    record = (await api.get(f"/sessions/{session_id}")).json()
    # a room's session, found by the room's name (other tests' sessions are listed too)
    await show_sessions(page, console_url, f"?room={record['room']}")
    await expect(page.get_by_test_id("filter-room")).to_have_value(record["room"])
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-session-id", str(session_id))
    await show_sessions(page, console_url, "")
    await expect(
        page.locator(f'[data-testid="session-row"][data-session-id="{session_id}"]')
    ).to_be_visible()
    await save_screenshot(page, "sessions-list")

    await show_sessions(page, console_url, f"?user={user_id}")
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
    stored_waterfall = turn.get_by_test_id("waterfall")
    await expect(
        stored_waterfall.locator('[data-testid="waterfall-stage"][data-stage="llm"]').first
    ).to_have_attribute("data-kind", "bar")
    cost = page.get_by_test_id("session-cost")
    await expect(cost).to_have_attribute("data-state", "shown")
    await expect(cost.get_by_test_id("cost-model").first).to_have_attribute(
        "data-output-tokens", re.compile(r"^[1-9]\d*$")
    )
    # the trace from Jaeger: the session's root span and spans nested under it
    trace = page.get_by_test_id("session-trace")
    await expect(trace).to_have_attribute("data-state", "shown", timeout=TRACE_ARRIVES_MS)
    await expect(trace).to_have_attribute("data-trace-id", str(record["trace_id"]))
    await expect(trace.locator('[data-testid="trace-span"][data-depth="0"]').first).to_be_visible()
    await expect(trace.locator('[data-testid="trace-span"][data-depth="2"]').first).to_be_visible()
    # this stack's worker runs with SWITCHBOARD_TRACE_CONTENT=true: the turn's words are there
    turn_span = await _turn_span(api, str(session_id))
    assert turn_span["attributes"]["switchboard.user_text"] == MESSAGE
    assert turn_span["attributes"]["switchboard.reply"] == REPLY
    await audit_page(page, audit, "session-detail")
    await save_screenshot(page, "session-detail")
    await page.get_by_test_id("session-turn").first.screenshot(
        path=str(ARTIFACTS / "session-turn-waterfall.png")
    )
    await cost.screenshot(path=str(ARTIFACTS / "session-cost.png"))
    await trace.screenshot(path=str(ARTIFACTS / "session-trace.png"))

    await page.get_by_test_id("session-agent-link").click()
    await page.get_by_test_id("tab-stats").click()
    await expect(page.get_by_test_id("agent-stats")).to_be_visible()
    await expect(
        page.locator('[data-testid="stats-chart"][data-field="issue_category"]')
    ).to_be_visible()
    await save_screenshot(page, "agent-stats")
    assert_no_blocking_violations(audit)


async def _turn_span(api: httpx.AsyncClient, session_id: str) -> dict:
    """The session's `turn` span, once the trace backend has it (spans leave in batches)."""
    deadline = asyncio.get_running_loop().time() + TRACE_ARRIVES_MS / 1000
    while True:
        reply = await api.get(f"/sessions/{session_id}/trace")
        spans = reply.json().get("spans", []) if reply.status_code == 200 else []
        turns = [span for span in spans if span["name"] == "turn"]
        if turns:
            return turns[0]
        assert asyncio.get_running_loop().time() < deadline, f"no turn span: {reply.text[:300]}"
        await asyncio.sleep(0.5)
