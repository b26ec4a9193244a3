"""Helpers of the trace tests: a trace exported by a separate process (the test process itself
never sets up export: a tracer provider is once per process, and every outbox event made
under it would carry a traceparent), and Jaeger's query API read until the trace is there."""

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack import REPO_ROOT
from devstack.trace_backend import TraceBackend

EXPORT_ONE_TRACE = """
from agent_configs import telemetry
telemetry.setup_tracing("switchboard-probe")
with telemetry.tracer("probe").start_as_current_span("outer") as outer:
    with telemetry.tracer("probe").start_as_current_span("inner", attributes={"n": 1}):
        pass
print(telemetry.trace_id_of(outer))
telemetry.flush()
"""


def export_probe_trace(backend: TraceBackend) -> str:
    """Two spans, `outer` and its child `inner`, of service `switchboard-probe`: the trace id."""
    exported = subprocess.run(
        [sys.executable, "-c", EXPORT_ONE_TRACE],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin"} | backend.otel_env("switchboard-probe"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    trace_id = exported.stdout.strip()
    assert len(trace_id) == 32, exported.stderr
    return trace_id


def read_trace(backend: TraceBackend, trace_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{backend.query_url}/api/traces/{trace_id}", timeout=5) as reply:
        (found,) = json.load(reply)["data"]
        return dict(found)


def stored_trace(
    backend: TraceBackend,
    trace_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda _: True,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """The trace once Jaeger holds it (and `until` holds): its collector batches what it
    received (200 ms here), so a query right after the export can still be a 404, and spans of
    other processes arrive when those export them."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] | None = None
    while True:
        try:
            found = read_trace(backend, trace_id)
            if until(found):
                return found
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id} not complete in {timeout}s: {found}")
        time.sleep(0.1)


async def trace_when(
    backend: TraceBackend,
    trace_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
) -> dict[str, Any]:
    """`stored_trace` for async tests: the event loop keeps running while it waits."""
    return await asyncio.to_thread(stored_trace, backend, trace_id, until, timeout)


@dataclass
class SpanTree:
    """A Jaeger trace's spans with their parents and services, for assertions."""

    spans: dict[str, dict[str, Any]]
    services: dict[str, str]

    @classmethod
    def of(cls, found: dict[str, Any]) -> "SpanTree":
        spans = {span["spanID"]: span for span in found["spans"]}
        services = {
            span_id: found["processes"][span["processID"]]["serviceName"]
            for span_id, span in spans.items()
        }
        return cls(spans, services)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [span for span in self.spans.values() if span["operationName"] == name]

    def parent(self, span: dict[str, Any]) -> dict[str, Any] | None:
        for reference in span.get("references") or []:
            if reference["refType"] == "CHILD_OF":
                return self.spans.get(reference["spanID"])
        return None

    def parent_name(self, span: dict[str, Any]) -> str | None:
        parent = self.parent(span)
        return parent["operationName"] if parent is not None else None

    def ancestors(self, span: dict[str, Any]) -> list[str]:
        names = []
        while (parent := self.parent(span)) is not None:
            names.append(parent["operationName"])
            span = parent
        return names

    def children(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in self.spans.values() if self.parent(s) is span]

    def outline(self) -> str:
        """The tree as indented lines (`name [service] +start ms, duration ms`), printed by the
        tests so a failure shows what the trace held."""
        origin = min((s["startTime"] for s in self.spans.values()), default=0)
        lines: list[str] = []

        def walk(span: dict[str, Any], depth: int) -> None:
            lines.append(
                f"{'  ' * depth}{span['operationName']} [{self.services[span['spanID']]}] "
                f"+{(span['startTime'] - origin) / 1000:.0f} ms, {span['duration'] / 1000:.1f} ms"
            )
            for child in sorted(self.children(span), key=lambda c: c["startTime"]):
                walk(child, depth + 1)

        for root in sorted(
            (s for s in self.spans.values() if self.parent(s) is None), key=lambda s: s["startTime"]
        ):
            walk(root, 0)
        return "\n".join(lines)

    def attributes(self) -> dict[str, list[Any]]:
        """Every tag key of every span -> its values."""
        found: dict[str, list[Any]] = {}
        for span in self.spans.values():
            for tag in span.get("tags") or []:
                found.setdefault(tag["key"], []).append(tag["value"])
        return found
