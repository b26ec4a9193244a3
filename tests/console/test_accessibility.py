"""The console for keyboard and screen-reader users, out of a session (issue 19 part 4): every
main page passes an axe-core audit with no serious or critical violation, each page has its own
title and takes the focus to its heading when the user goes there, a skip link comes first,
the playground's connection and agent state sit in a live region, and an agent-list row is one
Tab stop. The pages in a session (the playground in a room, the session page with its turns)
are audited by test_sessions.py, which holds a session anyway."""

import re
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.async_api import Page, expect
from pymongo.asynchronous.database import AsyncDatabase

from tests.console.accessibility import (
    assert_no_blocking_violations,
    audit_page,
    enable_axe,
    new_audit,
)
from tests.console.conftest import ConsoleKeys, agent_config, log_in, save_screenshot

NOT_AUTHORED = ("version", "status", "created_at", "updated_at")
FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1'])"


async def archived_agent_type(api: httpx.AsyncClient) -> str:
    """A copy of the support type, archived: the list shows archived rows differently (their
    contrast was one of the audit's findings). Its own id, so no other test sees it active."""
    support = await agent_config(api, "support-agent-v1")
    copy_id = f"a11y-archived-{uuid.uuid4().hex[:8]}"
    definition: dict[str, Any] = {k: v for k, v in support.items() if k not in NOT_AUTHORED}
    definition |= {"agent_id": copy_id, "name": f"Archived {copy_id[-8:]}"}
    created = await api.post("/agents", json=definition)
    assert created.status_code == 201, created.text
    archived = await api.delete(f"/agents/{copy_id}")
    assert archived.status_code == 200, archived.text
    return copy_id


async def two_versions_with_sessions(api: httpx.AsyncClient, database: AsyncDatabase) -> str:
    """A copy of the support type at versions 1 and 2 (its own id: no other test sees it) and
    ended sessions of each, inserted in the shape the worker stores them (3 on version 1, 2 on
    version 2), for the Analytics page to compare. Its id sorts after the archived copy's,
    which stays the agent list's first row, the one the walk opens."""
    support = await agent_config(api, "support-agent-v1")
    copy_id = f"ab-compare-{uuid.uuid4().hex[:8]}"
    definition: dict[str, Any] = {
        k: v for k, v in support.items() if k not in (*NOT_AUTHORED, "release_gate")
    }
    definition |= {"agent_id": copy_id, "name": f"A/B {copy_id[-8:]}"}
    created = await api.post("/agents", json=definition)
    assert created.status_code == 201, created.text
    changed = await api.put(
        f"/agents/{copy_id}", json=definition | {"greeting": "Hi!"}, headers={"If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    started = datetime.now(UTC) - timedelta(hours=1)
    sessions, turns = [], []
    for number, version in enumerate((1, 1, 1, 2, 2)):
        session_id = f"{copy_id}-s{number}"
        at = started + timedelta(minutes=number)
        sessions.append(
            {
                "_id": session_id,
                "session_id": session_id,
                "room": session_id,
                "agent_id": copy_id,
                "agent_version": version,
                "routing": {"agent_id": copy_id, "strategy": "purpose", "trail": []},
                "status": "ended",
                "started_at": at,
                "ended_at": at + timedelta(seconds=30),
                "end_reason": "user_left" if number % 2 else "agent_ended",
                "turn_count": 1 + number,
                "handoffs": [],
                "escalations": [{"agent_id": copy_id, "reason": "x", "then": "continue", "at": at}]
                if version == 2
                else [],
                "cost": {"llm": [{"model": "m", "input_tokens": 90, "output_tokens": 9}]},
            }
        )
        turns.append(
            {
                "_id": f"{session_id}:0",
                "session_id": session_id,
                "agent_id": copy_id,
                "turn_index": 0,
                "status": "ok",
                "fields": {"issue_category": "billing" if version == 1 else "technical"},
                "latency_ms": {"first_text": 400 + 100 * number},
                "created_at": at + timedelta(seconds=5),
            }
        )
    await database["sessions"].insert_many(sessions)
    await database["turns"].insert_many(turns)
    return copy_id


async def go_by_section_link(page: Page, label: str) -> None:
    """What a keyboard user does: the section's link in the top bar, pressed with Enter."""
    link = page.get_by_role("navigation", name="Sections").get_by_role("link", name=label)
    await link.focus()
    await page.keyboard.press("Enter")


class Findings:
    """Keyboard and screen-reader findings of one walk: collected, so that one run names every
    page's problems (and the axe audit of every page) before the test fails."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    async def check(self, what: str, expectation: Awaitable[None]) -> None:
        try:
            await expectation
        except AssertionError as error:
            self.failed.append(f"{what}: {str(error).splitlines()[0]}")

    def expect_true(self, what: str, ok: bool) -> None:
        if not ok:
            self.failed.append(what)


async def expect_page_announced(page: Page, findings: Findings, title: re.Pattern[str]) -> None:
    """The new page has its own document title and the focus is on its heading."""
    await findings.check(f"title {title.pattern}", expect(page).to_have_title(title, timeout=3000))
    await findings.check(
        f"focus on the heading ({title.pattern})",
        expect(page.locator("main h1")).to_be_focused(timeout=3000),
    )


async def test_every_main_page_passes_axe_and_works_by_keyboard_out_of_a_session(
    page: Page,
    console_url: str,
    keys: ConsoleKeys,
    api: httpx.AsyncClient,
    console_database: AsyncDatabase,
) -> None:
    audit = new_audit()
    findings = Findings()
    archived_id = await archived_agent_type(api)
    compared_id = await two_versions_with_sessions(api, console_database)
    titles: dict[str, str] = {}
    short = 3000  # what the console does at once: a missing focus or title is a finding

    await enable_axe(page)
    await page.goto(console_url)
    await expect(page.get_by_test_id("api-key")).to_be_editable()
    await findings.check(
        "login main", expect(page.get_by_role("main")).to_have_count(1, timeout=short)
    )
    await findings.check(
        "login h1",
        expect(page.get_by_role("heading", level=1)).to_have_count(1, timeout=short),
    )
    titles["login"] = await page.title()
    await audit_page(page, audit, "login")
    await save_screenshot(page, "a11y-login")

    await log_in(page, console_url, keys.admin)
    await expect(page.get_by_test_id("join-text")).to_be_visible()
    # logging in replaced the form: the focus goes to the first page's heading, not the body
    await findings.check(
        "focus after login", expect(page.locator("main h1")).to_be_focused(timeout=short)
    )
    titles["playground"] = await page.title()
    # the skip link is the first Tab stop of a page just opened, and takes the focus past the
    # top bar
    await page.reload()
    await expect(page.get_by_test_id("join-text")).to_be_visible()
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name=re.compile("skip to (main )?content", re.I))
    await findings.check("skip link first", expect(skip).to_be_focused(timeout=short))
    await page.keyboard.press("Enter")
    findings.expect_true(
        "the skip link takes the focus into main",
        await page.evaluate(
            "!!document.querySelector('main')"
            " && document.querySelector('main').contains(document.activeElement)"
        ),
    )
    # connection and agent state changes are announced: they sit in a live region
    findings.expect_true(
        "connection-state in a live region",
        await page.get_by_test_id("connection-state").evaluate(
            "el => !!el.closest('[aria-live]:not([aria-live=off]), [role=status], [role=log]')"
        ),
    )
    await audit_page(page, audit, "playground")

    await go_by_section_link(page, "Agent types")
    await expect(
        page.locator(f'[data-testid="agent-row"][data-agent-id="{archived_id}"]')
    ).to_be_visible()
    await expect_page_announced(page, findings, re.compile("Agent types"))
    titles["agents"] = await page.title()
    rows = page.get_by_test_id("agent-row")
    for index in range(await rows.count()):
        stops = await rows.nth(index).evaluate(
            f"row => (row.matches({FOCUSABLE!r}) ? 1 : 0)"
            f" + row.querySelectorAll({FOCUSABLE!r}).length"
        )
        findings.expect_true(f"agent row {index} is {stops} Tab stops, not 1", stops == 1)
    await audit_page(page, audit, "agents")
    await save_screenshot(page, "a11y-agents")

    # Enter on the row's link opens the type; its heading takes the focus
    await rows.first.locator("a").first.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("field-greeting")).to_be_editable()
    await findings.check(
        "focus on the agent's heading",
        expect(page.locator("main h1")).to_be_focused(timeout=short),
    )
    titles["agent-definition"] = await page.title()
    await audit_page(page, audit, "agent-definition")
    await page.get_by_test_id("editor-mode-json").click()
    await expect(page.get_by_test_id("json-editor")).to_be_visible()
    await audit_page(page, audit, "agent-definition-json")
    await save_screenshot(page, "a11y-agent-json")
    await page.get_by_test_id("tab-versions").click()
    await expect(page.get_by_test_id("version-row").first).to_be_visible()
    titles["agent-versions"] = await page.title()
    await audit_page(page, audit, "agent-versions")
    await page.get_by_test_id("tab-evals").click()
    await expect(page.get_by_test_id("eval-suite")).to_have_attribute(
        "data-state", re.compile("^(shown|none)$")
    )
    await expect(
        page.get_by_test_id("eval-run-row").first.or_(page.get_by_test_id("eval-runs-empty"))
    ).to_be_visible()
    titles["agent-evals"] = await page.title()
    await audit_page(page, audit, "agent-evals")
    await save_screenshot(page, "a11y-agent-evals")
    await page.get_by_test_id("tab-stats").click()
    await expect(page.get_by_test_id("agent-stats")).to_be_visible()
    titles["agent-stats"] = await page.title()
    await audit_page(page, audit, "agent-stats")

    await go_by_section_link(page, "Routing")
    await expect(page.get_by_test_id("rules-editor")).to_be_visible()
    await expect_page_announced(page, findings, re.compile("Routing"))
    titles["routing"] = await page.title()
    await audit_page(page, audit, "routing")

    await go_by_section_link(page, "Sessions")
    await expect(
        page.get_by_test_id("session-row").first.or_(page.get_by_test_id("sessions-empty"))
    ).to_be_visible()
    await expect_page_announced(page, findings, re.compile("Sessions"))
    titles["sessions"] = await page.title()
    await audit_page(page, audit, "sessions")

    # Analytics: two versions of one type compared, each group's sample size shown
    await go_by_section_link(page, "Analytics")
    await expect(page.get_by_test_id("analytics")).to_be_visible()
    await expect_page_announced(page, findings, re.compile("Analytics"))
    titles["analytics"] = await page.title()
    await page.get_by_test_id("analytics-mode-versions").check()
    await page.get_by_test_id("analytics-agent").select_option(compared_id)
    await expect(page.get_by_test_id("analytics-version-b")).to_have_value("2")
    await page.get_by_test_id("analytics-version-a").select_option("1")
    await page.get_by_test_id("analytics-compare").click()
    sizes = page.get_by_test_id("analytics-sessions")
    await expect(sizes.and_(page.locator('[data-group="a"]'))).to_have_attribute("data-n", "3")
    await expect(sizes.and_(page.locator('[data-group="b"]'))).to_have_attribute("data-n", "2")
    await expect(page.get_by_test_id("analytics-result")).to_have_attribute(
        "data-b", f"{compared_id}@2"
    )
    await audit_page(page, audit, "analytics")
    await save_screenshot(page, "a11y-analytics")

    await go_by_section_link(page, "Webhooks")
    await expect(
        page.get_by_test_id("webhook-row").first.or_(page.get_by_test_id("webhooks-empty"))
    ).to_be_visible()
    await expect_page_announced(page, findings, re.compile("Webhooks"))
    titles["webhooks"] = await page.title()
    await audit_page(page, audit, "webhooks")

    findings.expect_true(
        f"every page has its own title: {titles}", len(set(titles.values())) == len(titles)
    )
    print(f"[a11y] keyboard and screen-reader findings: {findings.failed}")
    print(f"[axe] serious or critical: {audit.blocking()}")
    assert not findings.failed, "\n".join(findings.failed)
    assert_no_blocking_violations(audit)
