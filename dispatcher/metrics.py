"""Prometheus metrics of the dispatcher (one process: no multiprocess mode).

The two gauges describe the whole database, not this replica: every replica reports the same
figures, so aggregate them with `max`, not `sum`."""

from prometheus_client import Counter, Gauge, Histogram

PENDING = Gauge(
    "switchboard_webhook_pending",
    "Deliveries not yet delivered or dead-lettered, plus outbox events not yet fanned out "
    "(whole database: use max across replicas).",
)
OLDEST_PENDING_AGE = Gauge(
    "switchboard_webhook_oldest_pending_age_seconds",
    "Age of the oldest event still waiting for a delivery (whole database: use max across replicas).",
)
DELIVERED = Counter(
    "switchboard_webhook_delivered_total",
    "Deliveries the receiver answered with a 2xx, by event type.",
    ["event_type"],
)
FAILED = Counter(
    "switchboard_webhook_failed_total",
    "Deliveries dead-lettered (status failed), by why: attempts, age, egress (the policy refuses "
    "the URL), secret, subscription_gone, event_gone.",
    ["reason"],
)
ATTEMPTS = Counter(
    "switchboard_webhook_attempts_total",
    "POSTs sent, by outcome: delivered, http_error (a non-2xx answer), network (refused, reset, timeout).",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "switchboard_webhook_delivery_seconds",
    "One POST, from sending to the receiver's answer (or the failure), by outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENT_TO_DELIVERY_SECONDS = Histogram(
    "switchboard_webhook_event_to_delivery_seconds",
    "From the event's outbox write to the receiver's 2xx, retries included.",
    buckets=(
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        15.0,
        60.0,
        300.0,
        1800.0,
        3600.0,
        21600.0,
        86400.0,
    ),
)
