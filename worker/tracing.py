"""A session's trace in the worker: one trace per session, rooted at our `session` span.

`SessionTrace.begin` (the entrypoint) sets up the job process's export on its first session
(agent_configs/telemetry.py: only when OTEL_* asks) and starts the root span as a new trace;
the entrypoint runs with it as the current span, so routing, the config lookup, the record
writes and livekit-agents' own spans (`agent_session`, its turns, `llm_node`, `tts_node`...,
which it emits once it is handed our tracer provider) nest under it. The turn spans with their
stages are the spans sink's (worker/sinks/spans.py), from each turn's waterfall.

livekit's per-job spans that begin before our entrypoint (`job_entrypoint`) are not recorded
(the provider is set after it started), and those outside any session (`job_shutdown`, the
room disconnect) would root traces of their own: the sampler lets only `session` start a
trace in a worker (setup_tracing's `roots`).

Off, `begin` returns a trace around OpenTelemetry's non-recording span: no provider, nothing
exported, nothing built per span.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from agent_configs import telemetry

logger = logging.getLogger("switchboard.tracing")

SERVICE_NAME = "switchboard-worker"
ROOT_SPAN = "session"
FLUSH_TIMEOUT_S = 2.0
"""How long a session's end waits for its spans to leave (the job process exits after it;
the wait blocks the job's loop, which has nothing else left to do then)."""

_tracer = telemetry.tracer("switchboard.worker")
_sessions: dict[str, "SessionTrace"] = {}


def setup_worker_tracing() -> bool:
    """Export on (once per process) when OTEL_* asks; livekit-agents gets the same provider,
    its content attributes (`lk.pii.*`, GenAI messages) kept only with
    SWITCHBOARD_TRACE_CONTENT."""
    if telemetry.enabled():
        return True
    provider = telemetry.setup_tracing(SERVICE_NAME, roots=(ROOT_SPAN,))
    if provider is None:
        return False
    from livekit.agents.telemetry import gen_ai, set_tracer_provider

    content = telemetry.content_enabled()
    set_tracer_provider(provider, allow_pii=content)
    gen_ai.set_capture_content(content)
    return True


@dataclass
class SessionTrace:
    """The root span of one session and what its children need."""

    session_id: str
    span: trace.Span

    @classmethod
    def begin(cls, session_id: str, room: str, job_id: str) -> "SessionTrace":
        if not setup_worker_tracing():
            return cls(session_id, trace.INVALID_SPAN)
        span = _tracer.start_span(
            ROOT_SPAN,
            context=otel_context.Context(),  # a trace of its own, not livekit's job span's
            attributes={
                "switchboard.session_id": session_id,
                "switchboard.room": room,
                "livekit.job_id": job_id,
            },
        )
        session = cls(session_id, span)
        _sessions[session_id] = session
        return session

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    @property
    def trace_id(self) -> str | None:
        return telemetry.trace_id_of(self.span)

    @property
    def traceparent(self) -> str | None:
        return telemetry.traceparent(self.span)

    @property
    def context(self) -> otel_context.Context:
        return trace.set_span_in_context(self.span)

    @contextmanager
    def current(self) -> Iterator[None]:
        """Run a block (and the tasks it starts) with the session span as the current one."""
        with trace.use_span(self.span, end_on_exit=False):
            yield

    def annotate(self, **attributes: Any) -> None:
        """`switchboard.<name>` attributes on the root (the agent type, the end reason)."""
        if self.recording:
            for name, value in attributes.items():
                if value is not None:
                    self.span.set_attribute(f"switchboard.{name}", value)

    def end(self, reason: str | None = None) -> None:
        """End the root span and send the session's spans before the job process exits."""
        _sessions.pop(self.session_id, None)
        if not self.recording:
            return
        self.annotate(end_reason=reason)
        self.span.end()
        try:
            telemetry.flush(FLUSH_TIMEOUT_S)
        except Exception as exc:  # the collector is away: the session ends all the same
            logger.warning("spans of %s not flushed: %s", self.session_id, exc)


def session_trace(session_id: str) -> SessionTrace | None:
    """The trace of a session running in this process (the spans sink reads it)."""
    return _sessions.get(session_id)


@contextmanager
def child_span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span under the current one; attributes that are None are left out."""
    with _tracer.start_as_current_span(
        name, attributes={k: v for k, v in attributes.items() if v is not None}
    ) as span:
        yield span
