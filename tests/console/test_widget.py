"""The website widget in Chromium, on a page served from another origin than the admin API's:
the one <script> tag opens a chat with the agent (text), the session record names its channel,
the panel passes axe-core and works by keyboard; a page from an origin the binding does not list
is refused, in words, and gets no token."""

import asyncio
import re
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from pymongo.asynchronous.database import AsyncDatabase

from agent_configs.channels import CHANNEL_BINDINGS, ChannelBinding, ChannelKind, WidgetSettings
from tests.console.accessibility import audit_page, enable_axe, new_audit
from tests.console.conftest import AdminApiServer, save_screenshot
from tests.worker.scripted_llm import ScriptedLLM

BINDING_ID = "shop-widget"
REFUSED = "This site is not allowed to use this chat."
RECORD_TIMEOUT_S = 10.0

SHOP_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Example shop</title>
<style>
  /* A page's own CSS, which must not reach into the widget. */
  body {{ font-family: serif; color: #7a0000; }}
  button {{ all: unset; }}
  p {{ display: none; }}
</style>
</head>
<body>
<main><h1>Example shop</h1></main>
<script src="{api}/widget.js" data-key="{key}" data-purpose="support" async></script>
</body>
</html>
"""


@contextmanager
def static_site(page: str) -> Iterator[str]:
    """A page on its own loopback origin (port 0): the shop that embeds the widget."""
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def publishable_key() -> str:
    return "pk_" + secrets.token_urlsafe(24)[:32]


@pytest.fixture(scope="module")
def shop(admin_api_server: AdminApiServer, publishable_key: str) -> Iterator[str]:
    with static_site(SHOP_PAGE.format(api=admin_api_server.base_url, key=publishable_key)) as o:
        yield o


@pytest.fixture(scope="module")
async def widget_binding(
    console_database: AsyncDatabase, shop: str, publishable_key: str
) -> AsyncIterator[ChannelBinding]:
    """The shop's binding: the support purpose, its origin only."""
    binding = ChannelBinding(
        binding_id=BINDING_ID,
        kind=ChannelKind.WIDGET,
        purpose="support",
        widget=WidgetSettings(origins=[shop], publishable_key=publishable_key),
    )
    await console_database[CHANNEL_BINDINGS].insert_one(binding.document())
    yield binding
    await console_database[CHANNEL_BINDINGS].delete_one({"_id": BINDING_ID})


async def widget_tokens(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    actor = f"widget:{BINDING_ID}"
    listed = await api.get("/events", params={"type": "token.minted", "actor": actor, "limit": 200})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def session_of_room(api: httpx.AsyncClient, room: str) -> dict[str, Any]:
    """The room's session record, once the worker has written it (it buffers its writes)."""
    deadline = asyncio.get_running_loop().time() + RECORD_TIMEOUT_S
    while True:
        listed = await api.get("/sessions", params={"channel": BINDING_ID})
        assert listed.status_code == 200, listed.text
        for item in listed.json()["items"]:
            if item.get("room") == room:
                return dict(item)
        assert asyncio.get_running_loop().time() < deadline, listed.json()
        await asyncio.sleep(0.2)


async def focus_in_widget(page: Page) -> str | None:
    """The data-testid of what has the focus inside the widget's shadow root."""
    return await page.evaluate(
        """() => {
          const host = document.getElementById("switchboard-widget");
          const el = host && host.shadowRoot && host.shadowRoot.activeElement;
          return el ? el.getAttribute("data-testid") : null;
        }"""
    )


@pytest.mark.timeout(120)
async def test_a_page_of_a_listed_origin_chats_with_the_agent_through_the_widget(
    page: Page,
    shop: str,
    widget_binding: ChannelBinding,
    api: httpx.AsyncClient,
    console_llm: ScriptedLLM,
) -> None:
    await enable_axe(page)
    await page.goto(shop)
    launcher = page.get_by_role("button", name="Chat with us")
    await launcher.click()
    panel = page.get_by_role("dialog", name="Chat with us")
    await expect(panel).to_be_visible()
    assert await focus_in_widget(page) == "widget-message"
    state = page.get_by_test_id("widget-agent-state")
    await expect(state).to_have_attribute("data-state", "listening")
    await expect(state).to_have_text("The agent is listening")

    await page.get_by_label("Your message").fill("Where is my parcel?")
    await page.get_by_role("button", name="Send").click()
    transcript = page.get_by_role("log", name="Conversation")
    await expect(transcript.locator('[data-role="user"]')).to_contain_text("Where is my parcel?")
    await expect(transcript.locator('[data-role="agent"]').last).to_contain_text(console_llm.reply)
    await expect(state).to_have_attribute("data-state", "listening")

    audit = new_audit()
    violations = await audit_page(page, audit, "widget-open")
    assert violations == [], violations
    await save_screenshot(page, "widget-open")

    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    assert await focus_in_widget(page) == "widget-launcher"
    await expect(launcher).to_have_attribute("aria-expanded", "false")

    (minted,) = await widget_tokens(api)
    assert minted["details"]["origin"] == shop
    record = await session_of_room(api, minted["room"])
    assert record["channel"] == {
        "kind": "widget",
        "binding_id": BINDING_ID,
        "conversation_id": minted["room"],
    }
    assert record.get("user_id") is None


@pytest.mark.timeout(60)
async def test_a_page_of_an_unlisted_origin_is_refused_in_the_panel_and_gets_no_token(
    page: Page,
    admin_api_server: AdminApiServer,
    widget_binding: ChannelBinding,
    publishable_key: str,
    api: httpx.AsyncClient,
) -> None:
    before = len(await widget_tokens(api))
    elsewhere = SHOP_PAGE.format(api=admin_api_server.base_url, key=publishable_key)
    with static_site(elsewhere) as origin:
        assert widget_binding.widget and origin not in widget_binding.widget.origins
        await page.goto(origin)
        await page.get_by_role("button", name="Chat with us").click()
        await expect(page.get_by_role("alert")).to_have_text(REFUSED)
        await expect(page.get_by_test_id("widget-agent-state")).to_have_text("Not connected")
        await save_screenshot(page, "widget-refused")
    assert len(await widget_tokens(api)) == before


@pytest.mark.timeout(120)
async def test_talk_moves_the_chat_to_voice_with_the_microphone_published_and_the_agent_heard(
    page: Page, shop: str, widget_binding: ChannelBinding, api: httpx.AsyncClient
) -> None:
    await page.goto(shop)
    await page.get_by_role("button", name="Chat with us").click()
    state = page.get_by_test_id("widget-agent-state")
    await expect(state).to_have_attribute("data-state", "listening")

    await page.get_by_role("button", name="Talk by voice (uses the microphone)").click()
    microphone = page.get_by_test_id("widget-microphone")
    await expect(microphone).to_have_attribute("data-microphone", "on")
    await expect(microphone).to_have_accessible_name("Mute the microphone")
    # The voice agent's track plays through an <audio> element inside the widget.
    await expect(page.get_by_test_id("widget-panel").locator("audio")).to_have_count(1)
    await expect(state).to_have_attribute("data-state", re.compile("listening|thinking|speaking"))
    newest = (await widget_tokens(api))[0]
    assert newest["details"]["modality"] == "voice"

    await microphone.click()
    await expect(microphone).to_have_attribute("data-microphone", "muted")
    await expect(microphone).to_have_accessible_name("Unmute the microphone")
