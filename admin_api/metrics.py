"""Prometheus metrics of the admin API: request latency by method, route template and status.

Labels use the route template (`/api/v1/agents/{agent_id}`), never the raw path, so the
number of series stays bounded whatever clients send; unmatched paths share one label.
Each app has its own registry, so several apps in one process (tests) do not collide.
"""

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin_api.redispatch import RedispatchMetrics
from agent_configs.writer import CountingObserver

UNMATCHED = "unmatched"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "switchboard_admin_request_duration_seconds",
            "Admin API request latency, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.redispatch = RedispatchMetrics(self.registry)
        self.outbox = outbox_metrics(self.registry)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def outbox_metrics(registry: CollectorRegistry) -> CountingObserver:
    """The admin outbox's writer, counted as the worker counts its records: events that wait
    for MongoDB are webhooks not yet sent, so an operator alerts on the backlog."""
    return CountingObserver(
        Gauge(
            "switchboard_admin_outbox_backlog",
            "Admin events (agent, routing, webhook tests) waiting for MongoDB.",
            registry=registry,
        ),
        Counter(
            "switchboard_admin_outbox_write_retries_total",
            "Admin event writes retried because MongoDB failed.",
            registry=registry,
        ),
        Counter(
            "switchboard_admin_outbox_spooled_total",
            "Admin events spooled to disk at shutdown, MongoDB unreachable.",
            registry=registry,
        ),
        Counter(
            "switchboard_admin_outbox_dead_lettered_total",
            "Admin events MongoDB cannot take, by why.",
            ["kind"],
            registry=registry,
        ),
    )


class MetricsMiddleware:
    """Pure ASGI, so it adds microseconds, not a BaseHTTPMiddleware task per request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
