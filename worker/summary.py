"""The session's summary at its end, and a transfer's hand-over note: a few sentences of the
conversation so far, from the agent's own models (worker/turns.py `summarize`)."""

import asyncio
import logging

from agent_configs.models import AgentConfig
from worker.transcript import Transcript
from worker.turns import StructuredCaller, summarize

SUMMARY_TIMEOUT_S = 30.0

logger = logging.getLogger("switchboard.conversation")


async def session_summary(
    caller: StructuredCaller, transcript: Transcript, config: AgentConfig
) -> str | None:
    """None when the type makes no summary or the model failed (the record is written anyway)."""
    if not config.summary.enabled:
        return None
    try:
        return await asyncio.wait_for(
            summarize(caller, transcript.messages, config.name, config.summary.max_tokens),
            SUMMARY_TIMEOUT_S,
        )
    except Exception as exc:
        logger.warning("summary failed: %s", exc)
        return None


async def handover_note(
    caller: StructuredCaller, transcript: Transcript, config: AgentConfig
) -> str | None:
    """What the target of a `summary` transfer is told of the conversation so far; None when
    the summary failed (the transfer goes on, without the note)."""
    try:
        summary = await asyncio.wait_for(
            summarize(caller, transcript.messages, config.name, config.summary.max_tokens),
            SUMMARY_TIMEOUT_S,
        )
    except Exception as exc:
        logger.warning("no summary for the transfer: %s", exc)
        return None
    return (
        f"A colleague ({config.name}) handed this conversation to you. "
        f"What happened so far: {summary}"
    )
