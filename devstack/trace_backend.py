"""Jaeger (devstack/jaeger: v1.75.0, a Go tool) as the local trace backend: OTLP/HTTP in, the
query API out, spans in memory. `make dev TRACES=1` runs it and points the worker, the admin API
and the dispatcher at it; the trace tests start one of their own (tests/conftest.py).

Its config is written per run (every port reserved, none fixed): the OTLP receiver (HTTP only),
the in-memory store, the query extension (HTTP API `/api/traces/{id}`; its gRPC API on a port
of its own), no listener of the collector's own telemetry (level none: its default
Prometheus reader takes :8888) and no tracing of the query service itself (on by default in
v1.75: it exports its own spans over gRPC to localhost:4317, retried in the background, and a
SIGTERM then waited 10 s for that export to time out)."""

from dataclasses import dataclass
from pathlib import Path

MAX_TRACES = 20_000
"""Traces the in-memory store keeps (oldest dropped first): a day of `make dev`, a few hundred MB
at most."""


@dataclass(frozen=True)
class TraceBackend:
    """Where a running Jaeger listens."""

    otlp_endpoint: str
    """OTLP/HTTP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`): the exporter adds /v1/traces."""
    query_url: str
    """Jaeger's query API base URL (`ADMIN_TRACE_QUERY_URL`): /api/traces/{trace_id}."""

    def otel_env(self, service_name: str) -> dict[str, str]:
        """The standard variables that turn export on in one of our processes."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": service_name,
        }


def jaeger_config(path: Path, otlp_port: int, query_port: int, query_grpc_port: int) -> Path:
    path.write_text(
        f"""service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: {MAX_TRACES}
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""
    )
    return path
