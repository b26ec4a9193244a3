"""CloudEvents of the outbox (agent_configs/cloudevents.py): `session.started`, one
`turn.completed` per turn and `session.ended`, the end-of-call report, built from the turns
this sink kept. Written through the record writer, behind the records they describe (this
sink runs after the records sink)."""

from typing import Any

from agent_configs.cloudevents import (
    LAST_SEQ,
    EventType,
    session_report_data,
    session_started_data,
    turn_data,
)
from worker.sinks import SessionEnd, SessionOutputs, SessionStart, Sink, Turn, register


def turn_report(turn: Turn) -> dict[str, Any]:
    """The turn as `turn.completed` (and the report's `turns`) describe it."""
    config = turn.config
    failure = turn.failure
    return turn_data(
        session_id=turn.session_id,
        turn_index=turn.index,
        agent_id=config.agent_id,
        agent_version=config.version,
        user_id=turn.user_id,
        user_text=turn.user_text,
        user_text_truncated=turn.user_text_cut_from is not None,
        reply=turn.reply,
        status=turn.status,
        fields=turn.fields,
        tool_calls=turn.tool_call_dicts(),
        latency_ms=turn.latency.as_ms(),
        latency_from=turn.latency.origin,
        error=failure.error if failure is not None else turn.error,
        error_kind=failure.kind if failure is not None else None,
    )


@register
class EventsSink(Sink):
    name = "events"
    order = 30

    def __init__(self, outputs: SessionOutputs) -> None:
        super().__init__(outputs)
        self._reports: dict[int, dict[str, Any]] = {}
        """Each turn as `turn.completed` describes it (`replied` until its fields come)."""

    def session_started(self, start: SessionStart) -> None:
        config = start.config
        data = session_started_data(
            session_id=start.session_id,
            room=start.room,
            agent_id=config.agent_id,
            agent_version=config.version,
            user_id=start.user_id,
            started_at=start.started_at,
            modalities=list(start.extra.get("modalities", config.modalities)),
            routing=start.routing,
        )
        self.outputs.emit(EventType.SESSION_STARTED, "started", data, at=start.started_at)

    def turn_replied(self, turn: Turn) -> None:
        self._reports[turn.index] = turn_report(turn)

    async def turn_finished(self, turn: Turn) -> None:
        report = self._reports[turn.index] = turn_report(turn)
        self.outputs.emit(
            EventType.TURN_COMPLETED, f"turn:{turn.index}", report, agent_id=turn.config.agent_id
        )

    def session_ended(self, end: SessionEnd) -> None:
        data = session_report_data(
            session_id=end.session_id,
            room=end.room,
            agent_id=end.config.agent_id,
            agent_version=end.config.version,
            user_id=end.user_id,
            started_at=end.started_at,
            ended_at=end.ended_at,
            end_reason=end.reason,
            end_detail=end.detail,
            summary=end.summary,
            transcript=end.transcript.as_record()["transcript"],
            transcript_dropped=end.transcript.dropped,
            turns=[self._reports[index] for index in sorted(self._reports)],
            usage={
                "prompt_tokens": end.usage.prompt_tokens,
                "completion_tokens": end.usage.completion_tokens,
            },
            routing=end.routing,
            handoffs=end.handoffs,
            escalations=end.escalations,
        )
        self.outputs.emit(EventType.SESSION_ENDED, "ended", data, seq=LAST_SEQ)
