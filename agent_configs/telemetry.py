"""One OpenTelemetry setup for every Switchboard process (worker, admin API, dispatcher).

On only when the standard variables ask for an export: an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or an explicit
`OTEL_TRACES_EXPORTER` (`otlp` or `console`); never with `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none`. `OTEL_SERVICE_NAME` names the process (default: the caller's),
`OTEL_EXPORTER_OTLP_PROTOCOL` / `..._TRACES_PROTOCOL` picks `http/protobuf` (default) or `grpc`;
the exporter itself reads the rest of the `OTEL_EXPORTER_OTLP_*` variables.

Off, nothing is set up: no tracer provider, and `tracer()` hands out OpenTelemetry's no-op
tracer, so a span costs a function call that returns a shared non-recording span. Code that
would build attributes first asks `enabled()`.

Content stays out of spans: prompts, replies, transcripts, tool arguments and field values go
into attributes only when the operator sets `SWITCHBOARD_TRACE_CONTENT=true` (`content_enabled()`;
livekit-agents' own content attributes follow the same setting).

The trace context crosses processes as a W3C `traceparent` (`traceparent()` / `context_of()`):
the worker's outbox events carry their session's, so the dispatcher's deliveries join the
session's trace (cloudevents.py, CloudEvents' distributed-tracing extension).
"""

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("switchboard.telemetry")

CONTENT_ENV = "SWITCHBOARD_TRACE_CONTENT"
EXPORTERS = ("otlp", "console")
_TRUE = ("1", "true", "yes", "on")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TraceSettings:
    """What the environment asks for; `export` False means telemetry is off."""

    export: bool
    exporter: str
    protocol: str
    service_name: str
    content: bool


def trace_settings(default_service: str, environ: Mapping[str, str] | None = None) -> TraceSettings:
    env = os.environ if environ is None else environ
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE
    exporter = named.split(",")[0].strip() if named else "otlp"
    export = not disabled and exporter != "none" and (bool(named) or bool(endpoint))
    if export and exporter not in EXPORTERS:
        logger.warning(
            "OTEL_TRACES_EXPORTER=%s: only %s are supported here; traces are not exported",
            named,
            ", ".join(EXPORTERS),
        )
        export = False
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    return TraceSettings(
        export=export,
        exporter=exporter,
        protocol=protocol,
        service_name=env.get("OTEL_SERVICE_NAME") or default_service,
        content=env.get(CONTENT_ENV, "").strip().lower() in _TRUE,
    )


@dataclass
class _State:
    provider: "TracerProvider | None" = None
    content: bool = False


_state = _State()


def setup_tracing(
    default_service: str,
    *,
    environ: Mapping[str, str] | None = None,
    roots: Sequence[str] | None = None,
) -> "TracerProvider | None":
    """The process's tracer provider, made once (later calls return it), or None when the
    environment does not ask for export. `roots`: the only span names that may start a trace
    in this process (the worker's `session`); any other span without a parent is dropped, so
    a library's spans outside a session (livekit's job shutdown) make no traces of their own."""
    if _state.provider is not None:
        return _state.provider
    settings = trace_settings(default_service, environ)
    if not settings.export:
        return None
    # Imported here: a process with telemetry off never loads the SDK for it.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    root_sampler: Any = ALWAYS_ON if roots is None else _roots_named(frozenset(roots))
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        sampler=ParentBased(root=root_sampler),
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    _state.provider, _state.content = provider, settings.content
    logger.info(
        "traces exported (%s, %s) as %s; content %s",
        settings.exporter,
        settings.protocol,
        settings.service_name,
        "included" if settings.content else "left out",
    )
    return provider


def _exporter(settings: TraceSettings) -> Any:
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _roots_named(names: frozenset[str]) -> Any:
    """A root sampler: a trace starts only at a span named one of `names`."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class RootsNamed(Sampler):
        def should_sample(
            self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any
        ) -> SamplingResult:
            decision = Decision.RECORD_AND_SAMPLE if name in names else Decision.DROP
            return SamplingResult(decision)

        def get_description(self) -> str:
            return f"RootsNamed{sorted(names)}"

    return RootsNamed()


def enabled() -> bool:
    """Spans are exported from this process."""
    return _state.provider is not None


def content_enabled() -> bool:
    """Prompts, replies, transcripts, tool arguments and field values may go into spans."""
    return _state.provider is not None and _state.content


def tracer(name: str) -> trace.Tracer:
    """OpenTelemetry's tracer of `name`: a no-op one while telemetry is off."""
    return trace.get_tracer(name)


def flush(timeout_s: float = 5.0) -> None:
    """Export what is buffered (a job process exits after its session)."""
    if _state.provider is not None:
        _state.provider.force_flush(int(timeout_s * 1000))


def traceparent(span: trace.Span | None = None) -> str | None:
    """The W3C `traceparent` of `span` (default: the current span), or None without one."""
    if span is None:
        span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context a `traceparent` names (a remote parent), or None for none or a bad one."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def trace_id_of(span: trace.Span) -> str | None:
    """The span's trace id as 32 hex digits (what Jaeger's query API takes), or None."""
    span_context = span.get_span_context()
    return trace.format_trace_id(span_context.trace_id) if span_context.is_valid else None
