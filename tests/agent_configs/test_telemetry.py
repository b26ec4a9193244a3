"""The OpenTelemetry setup (agent_configs/telemetry.py): on only when the OTEL_* variables ask
for an export; off, no provider and a no-op tracer. Service-free: nothing is exported here."""

import pytest
from opentelemetry import trace

from agent_configs import telemetry

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


def test_with_no_otel_variables_the_setup_makes_no_provider_and_spans_are_no_ops() -> None:
    assert telemetry.setup_tracing("switchboard-test", environ={}) is None
    assert not telemetry.enabled() and not telemetry.content_enabled()
    assert not isinstance(trace.get_tracer_provider(), _sdk_provider())
    with telemetry.tracer("switchboard.test").start_as_current_span("session") as span:
        assert not span.is_recording()
        assert telemetry.traceparent() is None
        assert telemetry.trace_id_of(span) is None


def test_content_stays_out_unless_the_operator_setting_turns_it_on() -> None:
    assert not telemetry.setup_tracing("t", environ={"SWITCHBOARD_TRACE_CONTENT": "true"})
    assert not telemetry.content_enabled()  # no export, no content either
    assert not telemetry.trace_settings("t", ENDPOINT).content
    assert telemetry.trace_settings("t", ENDPOINT | {"SWITCHBOARD_TRACE_CONTENT": "true"}).content


@pytest.mark.parametrize(
    ("environ", "export"),
    [
        ({}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        (ENDPOINT | {"OTEL_TRACES_EXPORTER": "none"}, False),
        (ENDPOINT | {"OTEL_SDK_DISABLED": "true"}, False),
        (ENDPOINT | {"OTEL_TRACES_EXPORTER": "zipkin"}, False),  # not installed here: off, said
        ({"OTEL_SERVICE_NAME": "worker-a"}, False),  # a name alone asks for nothing
    ],
)
def test_export_is_on_only_when_the_standard_variables_ask_for_it(
    environ: dict[str, str], export: bool
) -> None:
    assert telemetry.trace_settings("switchboard-test", environ).export is export


def test_the_service_name_is_otel_service_name_or_the_process_default() -> None:
    assert telemetry.trace_settings("switchboard-worker", ENDPOINT).service_name == (
        "switchboard-worker"
    )
    named = ENDPOINT | {"OTEL_SERVICE_NAME": "worker-eu"}
    assert telemetry.trace_settings("switchboard-worker", named).service_name == "worker-eu"


def test_a_traceparent_names_its_trace_and_a_bad_one_names_none() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = telemetry.context_of(parent)
    assert context is not None
    span_context = trace.get_current_span(context).get_span_context()
    assert trace.format_trace_id(span_context.trace_id) == "0af7651916cd43dd8448eb211c80319c"
    assert span_context.is_remote
    assert telemetry.traceparent(trace.get_current_span(context)) == parent
    assert telemetry.context_of(None) is None
    assert telemetry.context_of("00-nonsense") is None


def _sdk_provider() -> type:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider
