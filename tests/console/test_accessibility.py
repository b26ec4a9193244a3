"""The console for keyboard and screen-reader users, out of a session (issue 19 part 4): every
main page passes an axe-core audit with no serious or critical violation, each page has its own
title and takes the focus to its heading when the user goes there, a skip link comes first,
the playground's connection and agent state sit in a live region, and an agent-list row is one
Tab stop. The pages in a session (the playground in a room, the session page with its turns)
are audited by test_sessions.py, which holds a session anyway."""

import re
import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
from playwright.async_api import Page, expect

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
    page: Page, console_url: str, keys: ConsoleKeys, api: httpx.AsyncClient
) -> None:
    audit = new_audit()
    findings = Findings()
    archived_id = await archived_agent_type(api)
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
