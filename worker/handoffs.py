"""Handing a conversation to another agent type: on an intent (the first user message of a
session routed by `default`) or by the model's `transfer_to_agent` tool.

Either way the target is a session of its own type: it needs one of the target's
`max_concurrent_sessions` slots (and gives back the current type's), its agent is built with
the context it may have, equipped with its tools, and the hand-off is recorded (the session
record's `handoffs`, the agent participant's attributes, `agent-handoff` to the room, a
`session.handoff` event, the routing metric).
"""

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from agent_configs.cloudevents import EventType, handoff_data
from agent_configs.models import AgentConfig
from worker import metrics
from worker.host import ConversationHost
from worker.records import SESSIONS, Record
from worker.session import ConfiguredAgent
from worker.summary import handover_note
from worker.turn import now

HANDOFF_TOPIC = "agent-handoff"
TRANSFER = "transfer_to_agent"


class TransferRefused(Exception):
    """Why a transfer target cannot take the conversation, in words the model can pass on."""


class Handoffs:
    def __init__(self, conversation: ConversationHost) -> None:
        self._c = conversation
        self.done: list[dict[str, Any]] = []
        """The session record's `handoffs`, in order."""

    async def on_intent(self, current: ConfiguredAgent, user_text: str) -> ConfiguredAgent | None:
        """Only the first user message of a session routed by `default` is matched.

        Kept beside `transfer_to_agent` as a cheap pre-filter: a keyword match costs no LLM
        call and decides before the first reply, so a user whose first words say where they
        belong is answered by the right type in that very turn, instead of one reply of the
        wrong type telling them about a transfer (two model calls, then the target's own).
        Types without `intents` never pay for it; anything subtler is the model's to decide.

        When the target is full, or its agent cannot be built, the current agent keeps the
        conversation and answers the message; the log says why."""
        c = self._c
        current.handoff_check = None
        assert c.find_handoff is not None
        found = await c.find_handoff(current.config.agent_id, user_text)
        if found is None:
            return None
        target_config, match = found
        intent = match.get("intent")
        try:
            target = await c.build_agent(target_config, list(c.transcript.messages))
        except Exception as exc:
            c.log.warning("no hand-off to %s on intent %s: %s", target_config.agent_id, intent, exc)
            return None
        if c.move_slot is not None and not await c.move_slot(target_config):
            c.log.info(
                "no hand-off to %s on intent %s: full (max_concurrent_sessions=%s)",
                target_config.agent_id,
                intent,
                target_config.max_concurrent_sessions,
            )
            return None
        await c.equip(target)
        target.on_entered = c.entered
        await c.entered(target)  # at once: the message that matched is the target's to answer
        await self._record(current.config, target_config, "intent", {"match": match})
        c.log.info("handed off to %s on intent %s", target_config.agent_id, intent)
        return target

    async def transfer(
        self, target: str, reason: str, context: Literal["full", "summary", "none"]
    ) -> str:
        """The model hands the conversation to `target` (one of its tool's `targets`).

        The target is read and checked the way routing does (`load_target`), then its agent
        is built with the context the tool allows (`full`: the transcript; `summary`: a
        summary of it added to the target's instructions; `none`: nothing), then a capacity
        slot of the target is claimed (the current type's is given back). Any refusal is the
        tool's result, and the current agent keeps the conversation. On success the current
        agent answers the result (telling the user who takes over), then livekit switches
        agents: the target greets when it starts afresh (`none`, with a greeting) and
        otherwise continues the conversation with a reply of its own."""
        c = self._c
        source = c.agent.config
        if target == source.agent_id:
            return f"Transfer refused: the conversation is already with {target}."
        if c.load_target is None:
            return "Transfer refused: this session cannot transfer."
        try:
            target_config = await c.load_target(target)
        except TransferRefused as exc:
            c.log.info("no transfer to %s: %s", target, exc)
            return f"Transfer refused: {target} cannot take the conversation ({exc}). Keep helping the user."
        note = (
            await handover_note(c.caller(), c.transcript, source) if context == "summary" else None
        )
        try:
            new_agent = await c.build_agent(
                target_config, list(c.transcript.messages) if context == "full" else []
            )
        except Exception as exc:
            c.log.warning("no transfer to %s: %s", target, exc)
            return f"Transfer refused: {target} is unavailable. Keep helping the user."
        if note:
            await new_agent.update_instructions(f"{new_agent.instructions}\n\n{note}")
        if c.move_slot is not None and not await c.move_slot(target_config):
            c.log.info(
                "no transfer to %s: full (max_concurrent_sessions=%s)",
                target,
                target_config.max_concurrent_sessions,
            )
            return f"Transfer refused: {target} is fully booked right now. Keep helping the user."
        await c.equip(new_agent)
        new_agent.on_entered = self._entered_after_transfer(context)
        await self._record(source, target_config, TRANSFER, {"reason": reason, "context": context})
        c.log.info("transferred to %s (%s context): %s", target, context, reason)
        c.session.update_agent(new_agent)
        return (
            f"Transferred: {target_config.name} takes over after your reply. Tell the user so in one "
            "short sentence, and do not answer their question yourself."
        )

    def _entered_after_transfer(self, context: str) -> Callable[[ConfiguredAgent], Awaitable[None]]:
        c = self._c

        async def entered(agent: ConfiguredAgent) -> None:
            await c.entered(agent)
            try:
                if context == "none" and agent.config.greeting:
                    c.session.say(agent.config.greeting, allow_interruptions=False)
                else:
                    c.session.generate_reply()
            except RuntimeError:  # the session is closing
                pass

        return entered

    async def _record(
        self, source: AgentConfig, target: AgentConfig, strategy: str, details: dict[str, Any]
    ) -> None:
        """One hand-off, whichever way it was decided."""
        c, outputs = self._c, self._c.outputs
        handoff = {
            "from_agent_id": source.agent_id,
            "to_agent_id": target.agent_id,
            "strategy": strategy,
            **details,
            "at": now(),
        }
        self.done.append(handoff)
        await c.room.local_participant.set_attributes(
            {"switchboard.agent_id": target.agent_id, "switchboard.strategy": strategy}
        )
        await outputs.publish(
            HANDOFF_TOPIC,
            {"session_id": c.session_id, **handoff, "at": handoff["at"].isoformat()},
        )
        outputs.submit(
            Record(SESSIONS, c.session_id, {"agent_id": target.agent_id, "handoffs": self.done})
        )
        number = len(self.done) - 1
        data = handoff_data(session_id=c.session_id, handoff=handoff)
        outputs.emit(EventType.SESSION_HANDOFF, f"handoff:{number}", data, agent_id=source.agent_id)
        metrics.ROUTING_DECISIONS.labels(target.agent_id, strategy).inc()
