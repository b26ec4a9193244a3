"""Voice in the playground: Chromium's fake microphone plays words the local TTS spoke
(tests/console/fake_microphone.py); the agent hears them (VAD + Whisper), answers, speaks.

The fake microphone loops its file from the moment the page opens it, whatever the agent is
doing. The test uses the page's own mute button as a user would: muted while the agent joins
and greets (the greeting cannot be interrupted, so words said over it are not answered),
unmuted to speak once the agent listens, muted again once the words were transcribed.
"""

import asyncio
import re
import time

import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import (
    ARTIFACTS,
    ConsoleKeys,
    Metrics,
    built_in_configs,
    log_in,
    save_screenshot,
)
from tests.console.playground import (
    AGENT_JOINS_MS,
    MODEL_REPLIES_MS,
    end_session,
    expect_agent_state,
    expect_turn_with_fields,
    pick_agent,
    user_lines,
)

TRACE_ARRIVES_MS = 30_000
"""The worker exports spans in batches (every 5 s, the last at the session's end); the page
asks again every 3 s for 30 s after the end."""
AUDIBLE_PEAK = 0.01
"""`agent-audio`'s data-peak (0..1) above which the agent's audio was not silence."""
HEARD_WORDS = re.compile(r"log|account", re.IGNORECASE)
"""From the fake user's "Hello, I cannot log in to my account": Whisper tiny.en may cut or
merge the rest."""


async def set_muted(page: Page, muted: bool) -> None:
    button = page.get_by_test_id("mute")
    if (await button.get_attribute("aria-pressed")) != str(muted).lower():
        await button.click()
    await expect(button).to_have_attribute("aria-pressed", str(muted).lower())


async def wait_for_agent_audio(page: Page, timeout_ms: float) -> None:
    await page.wait_for_function(
        "peak => Number(document.querySelector('[data-testid=\"agent-audio\"]')?.dataset.peak ?? 0) > peak",
        arg=AUDIBLE_PEAK,
        timeout=timeout_ms,
        polling=50,
    )


@pytest.mark.timeout(600)
async def test_a_spoken_question_is_transcribed_answered_aloud_and_its_turn_shown(
    page: Page, console_url: str, keys: ConsoleKeys, metrics: Metrics
) -> None:
    agent_id = "support-agent-v1"
    required = [f.name for f in built_in_configs()[agent_id].turn_schema.fields if f.required]
    await log_in(page, console_url, keys.admin, "#/playground")
    await pick_agent(page, agent_id)

    joined_at = time.monotonic()
    await page.get_by_test_id("join-voice").click()
    await set_muted(page, True)
    await expect(page.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "connected"
    )
    await wait_for_agent_audio(page, AGENT_JOINS_MS)  # the spoken greeting
    metrics.record(
        "voice: join -> first agent audio (greeting) played", (time.monotonic() - joined_at) * 1000
    )

    await expect_agent_state(page, "listening", AGENT_JOINS_MS)
    # Watched from now, every 50 ms: the next `speaking` is the reply, however short it is.
    # (A function, not an expression: the console's CSP forbids eval, as it should.)
    reply_spoken = asyncio.ensure_future(
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"agent-state\"]')?.dataset.state === 'speaking'",
            timeout=MODEL_REPLIES_MS * 2,
            polling=50,
        )
    )
    await set_muted(page, False)
    heard = user_lines(page).filter(has_text=HEARD_WORDS)
    await expect(heard.first).to_have_attribute("data-final", "true", timeout=MODEL_REPLIES_MS)
    await set_muted(page, True)
    await reply_spoken

    turn = await expect_turn_with_fields(page, required, index=0)
    latency = turn.get_by_test_id("turn-latency")
    first_ms = float(await latency.get_attribute("data-first-ms") or "nan")
    metrics.record("voice: end of speech -> first reply audio (browser)", first_ms)
    # the voice turn's waterfall: hearing, the model and speaking, each on the turn's scale
    waterfall = turn.get_by_test_id("waterfall")
    for stage, kind in (("user_speech_end", "point"), ("llm", "bar"), ("first_audio", "point")):
        await expect(
            waterfall.locator(f'[data-testid="waterfall-stage"][data-stage="{stage}"]').first
        ).to_have_attribute("data-kind", kind)
    await save_screenshot(page, "playground-voice")
    await waterfall.screenshot(path=str(ARTIFACTS / "playground-voice-waterfall.png"))
    await end_session(page)

    # the voice session's trace, from Jaeger, on its session page
    await page.get_by_test_id("summary-session-link").click()
    trace = page.get_by_test_id("session-trace")
    await expect(trace).to_have_attribute("data-state", "shown", timeout=TRACE_ARRIVES_MS)
    stage_spans = trace.locator('[data-testid="trace-span"][data-name^="stage."]')
    await expect(stage_spans.first).to_be_visible()
    await trace.scroll_into_view_if_needed()
    await trace.screenshot(path=str(ARTIFACTS / "voice-session-trace.png"))
