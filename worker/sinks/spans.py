"""Spans (OpenTelemetry, worker/tracing.py): each finished turn as a `turn` span under the
session's root, with one child per stage of its waterfall (`stage.llm`,
`stage.tts`, `stage.tool`...; a point stage is a zero-length span), and the session's hand-offs
and escalations as spans at their moment. Built after the fact from the turn object, with the
turn's own clock readings as start and end times, so nothing in the turn's path waits on it.

livekit-agents' spans of the same turn (`agent_turn`, `llm_node`, `tts_node`, `function_tool`)
are under its `agent_session` span, itself under our root: the two views sit side by side.

Content (the user's words, the reply, the fields, tool arguments and results) goes into
attributes only with SWITCHBOARD_TRACE_CONTENT=true. Off (no export), this sink does nothing.
"""

import json
import time
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from agent_configs import telemetry
from worker.sinks import SessionEnd, SessionOutputs, Sink, Turn, register
from worker.tracing import session_trace

_tracer = telemetry.tracer("switchboard.worker.turns")
CONTENT_CHARS = 4000
"""Content attributes are cut here: a span is not the transcript's store."""


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:CONTENT_CHARS]


@register
class SpansSink(Sink):
    name = "spans"
    order = 50

    def __init__(self, outputs: SessionOutputs) -> None:
        super().__init__(outputs)
        traced = session_trace(outputs.session_id)
        self._session = traced if traced is not None and traced.recording else None

    async def turn_finished(self, turn: Turn) -> None:
        if self._session is None:
            return
        origin = turn.latency.started_at
        stages = turn.waterfall()
        ends = [origin + stage.end_ms / 1000 for stage in stages]
        if turn.filled_at is not None:
            ends.append(turn.filled_at.timestamp())
        attributes: dict[str, Any] = {
            "switchboard.turn_index": turn.index,
            "switchboard.agent_id": turn.config.agent_id,
            "switchboard.status": turn.status,
            "switchboard.latency_from": turn.latency.origin,
            "switchboard.tool_calls": len(turn.tool_calls),
            "gen_ai.request.model": turn.model,
        }
        for mark, ms in turn.latency.as_ms().items():
            attributes[f"switchboard.latency_ms.{mark}"] = ms
        if turn.error_kind:
            attributes["switchboard.error_kind"] = turn.error_kind
        content = telemetry.content_enabled()
        if content:
            attributes["switchboard.user_text"] = _text(turn.user_text or "")
            attributes["switchboard.reply"] = _text(turn.reply)
            attributes["switchboard.fields"] = _text(turn.fields)
        span = _tracer.start_span(
            "turn",
            context=self._session.context,
            start_time=_ns(origin),
            attributes=attributes,
        )
        if turn.status == "failed":
            span.set_status(StatusCode.ERROR, turn.error_kind or turn.error or "failed")
        inside = trace.set_span_in_context(span)
        calls = iter(turn.tool_calls)
        for stage in stages:
            stage_attributes: dict[str, Any] = {"switchboard.source": stage.source}
            if stage.detail:
                stage_attributes["switchboard.detail"] = stage.detail
            if stage.stage == "tool":
                call = next(calls, None)
                if call is not None:
                    stage_attributes["switchboard.tool.ok"] = call.ok
                    if content:
                        stage_attributes["switchboard.tool.arguments"] = _text(call.arguments)
                        stage_attributes["switchboard.tool.result"] = _text(call.result_preview)
            child = _tracer.start_span(
                f"stage.{stage.stage}",
                context=inside,
                start_time=_ns(origin + stage.start_ms / 1000),
                attributes=stage_attributes,
            )
            child.end(end_time=_ns(origin + stage.end_ms / 1000))
        span.end(end_time=_ns(max(ends, default=time.time())))

    def session_ended(self, end: SessionEnd) -> None:
        if self._session is None:
            return
        for kind, moments in (("handoff", end.handoffs), ("escalation", end.escalations)):
            for moment in moments:
                at = _ns(_seconds(moment.get("at")))
                attributes = {
                    f"switchboard.{key}": value
                    for key, value in moment.items()
                    if isinstance(value, str | int | float | bool)
                    and key not in ("at", "reason", "context", "summary")
                }
                span = _tracer.start_span(
                    kind, context=self._session.context, start_time=at, attributes=attributes
                )
                span.end(end_time=at)


def _seconds(at: Any) -> float:
    if isinstance(at, datetime):
        return at.timestamp()
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
