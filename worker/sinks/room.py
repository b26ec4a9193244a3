"""The room's `agent-turn`: each finished turn's fields, tool calls, latency and waterfall,
published to everyone in the room (the frontend shows them beside the reply)."""

from typing import Any

from worker.sinks import Sink, Turn, register
from worker.turns import TURN_TOPIC


def turn_payload(turn: Turn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "session_id": turn.session_id,
        "agent_id": turn.config.agent_id,
        "turn_index": turn.index,
        "fields": turn.fields,
        "tool_calls": turn.tool_call_dicts(),
    }
    if turn.status == "failed":
        payload["status"] = "failed"
    if turn.failure is not None:
        payload["error_kind"] = turn.failure.kind
    elif (
        turn.user_text_cut_from is not None
    ):  # the frontend can tell its user that only the start was read
        payload["user_text_truncated"] = True
    return payload | turn.latency_fields()


@register
class RoomSink(Sink):
    name = "room"
    order = 10

    async def turn_finished(self, turn: Turn) -> None:
        await self.outputs.publish(TURN_TOPIC, turn_payload(turn))
