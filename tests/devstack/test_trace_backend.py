"""Jaeger as the devstack builds and starts it: spans a process exports over OTLP/HTTP with the
standard OTEL_* variables (agent_configs/telemetry.py) come back from its query API."""

import urllib.error

import pytest

from devstack.trace_backend import TraceBackend
from tests.traces import export_probe_trace, read_trace, stored_trace


def test_spans_exported_with_the_otel_variables_come_back_from_the_query_api(
    trace_backend: TraceBackend,
) -> None:
    trace_id = export_probe_trace(trace_backend)

    found = stored_trace(trace_backend, trace_id)
    spans = {span["operationName"]: span for span in found["spans"]}
    assert set(spans) == {"outer", "inner"}
    (parent,) = spans["inner"]["references"]
    assert parent["refType"] == "CHILD_OF" and parent["spanID"] == spans["outer"]["spanID"]
    (process,) = {found["processes"][s["processID"]]["serviceName"] for s in found["spans"]}
    assert process == "switchboard-probe"


def test_an_unknown_trace_is_a_404_of_the_query_api(trace_backend: TraceBackend) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        read_trace(trace_backend, "0af7651916cd43dd8448eb211c80319c")
    assert missing.value.code == 404
