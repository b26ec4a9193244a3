"""Prometheus metrics of the worker.

Job processes are separate processes, so the worker runs prometheus_client in multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR`, set up by livekit's AgentServer before the job processes
fork): every process writes its samples to that directory and the worker's metrics port
serves their sum. Gauges use `livesum` so a finished process stops counting.
"""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_SESSIONS = Gauge(
    "switchboard_active_sessions",
    "Sessions running now.",
    ["agent_id", "strategy"],
    multiprocess_mode="livesum",
)
SESSIONS_STARTED = Counter(
    "switchboard_sessions_started_total", "Sessions started.", ["agent_id", "strategy"]
)
ROUTING_DECISIONS = Counter(
    "switchboard_routing_decisions_total",
    "Routing decisions, by chosen agent and winning strategy ('none' when nothing was available).",
    ["agent_id", "strategy"],
)
LLM_TOKENS = Counter(
    "switchboard_llm_tokens_total", "LLM tokens used.", ["model", "kind"]
)
LLM_TTFT = Histogram(
    "switchboard_llm_time_to_first_token_seconds",
    "Time from request to the first LLM token.",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
LLM_ERRORS = Counter("switchboard_llm_errors_total", "LLM errors.", ["model"])
TURN_EXTRACTION_FAILURES = Counter(
    "switchboard_turn_extraction_failures_total",
    "Turns whose structured fields failed validation after the retry.",
    ["agent_id"],
)
RECORDS_BUFFERED = Gauge(
    "switchboard_records_buffered",
    "Session/turn records waiting for MongoDB.",
    multiprocess_mode="livesum",
)
RECORD_WRITE_RETRIES = Counter(
    "switchboard_record_write_retries_total", "Record writes retried because MongoDB failed."
)
RECORDS_SPOOLED = Counter(
    "switchboard_records_spooled_total", "Records spooled to disk because MongoDB was unreachable."
)
