"""Escalating to a human (`escalate_to_human`), and closing a session after the reply that a
tool was part of (`end_session`, an escalation with `then: end`)."""

import contextlib
from typing import Any, Literal

from livekit.agents import AgentSession

from agent_configs.cloudevents import EventType, escalated_data
from worker.host import ConversationHost
from worker.records import SESSIONS, Record
from worker.turn import now

ESCALATION_TOPIC = "agent-escalation"
ESCALATED = "escalated"
"""`end_reason` of a session an `escalate_to_human` tool with `then: end` ended."""
HOLD_MESSAGE = (
    "I've asked a colleague to take over. Please hold on, someone will be with you shortly."
)


class Escalations:
    def __init__(self, conversation: ConversationHost) -> None:
        self._c = conversation
        self.done: list[dict[str, Any]] = []
        """The session record's `escalations`, in order."""

    async def escalate(
        self, reason: str, then: Literal["continue", "hold", "end"], message: str | None
    ) -> str:
        """Marks the session escalated (the record's `escalations`, an `agent-escalation` to
        the room for the frontend or a backend to page a human), says `message` if given,
        then: `continue` (the agent goes on), `hold` (the agent says so and stops answering:
        messages are still recorded, nothing replies until the session ends; a human joins
        through the frontend's own means) or `end` (the session ends, `end_reason: escalated`)."""
        c, outputs = self._c, self._c.outputs
        at = now()
        escalation = {"agent_id": c.config.agent_id, "reason": reason, "then": then, "at": at}
        self.done.append(escalation)
        outputs.submit(Record(SESSIONS, c.session_id, {"escalations": self.done}))
        outputs.audit("session.escalated", at, {"reason": reason, "then": then})
        number = len(self.done) - 1
        data = escalated_data(session_id=c.session_id, escalation=escalation)
        outputs.emit(EventType.SESSION_ESCALATED, f"escalated:{number}", data)
        await outputs.publish(
            ESCALATION_TOPIC,
            {"session_id": c.session_id, **escalation, "at": at.isoformat()},
        )
        c.log.info("escalated to a human (%s): %s", then, reason)
        if then == "end":
            if c.end_reason is None:
                c.end_reason, c.end_detail = ESCALATED, reason
                c.in_background(
                    close_after_this_reply(c.session, message), "switchboard.escalation_end"
                )
            return "A human colleague was notified and the session ends now: add nothing more."
        if then == "hold":
            c.agent.holding = True
            with contextlib.suppress(RuntimeError):
                c.session.say(message or HOLD_MESSAGE, allow_interruptions=False)
            return "A human colleague was notified; the user was told to hold on."
        if message:
            with contextlib.suppress(RuntimeError):
                c.session.say(message, allow_interruptions=False)
        return "A human colleague was notified. Tell the user, then keep helping them meanwhile."


async def close_after_this_reply(session: AgentSession, goodbye: str | None) -> None:
    """Wait until the reply the tool is part of has been said (with every step after its
    tools), then the goodbye, then close the session (its end runs as usual)."""
    try:
        current = session.current_speech
        if current is not None:
            await current.wait_for_playout()
        if goodbye:
            await session.say(goodbye, allow_interruptions=False).wait_for_playout()
    except RuntimeError:  # the session is already closing
        pass
    finally:
        session.shutdown(drain=True)
