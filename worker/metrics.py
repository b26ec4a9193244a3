"""Prometheus metrics of the worker.

Job processes are separate processes, so the worker runs prometheus_client in multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR`, set up by livekit's AgentServer before the job processes
fork): every process writes its samples to files named after its pid in that directory, and
the worker's metrics port serves their sum. Gauges use `livesum` so a finished process stops
counting.

Every session runs in a new job process, so without care that directory gains a few files per
session for ever, and every scrape reads them all. When a job process has ended,
`forget_process` (run in the main process) removes its live-gauge files (prometheus_client's
`mark_process_dead`) and folds its counters and histograms into one archive file per kind,
so totals never go backwards and the directory holds files of live processes only.
"""

import glob
import logging
import os
import threading
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, multiprocess
from prometheus_client.mmap_dict import MmapedDict

logger = logging.getLogger("switchboard.metrics")

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
LLM_TOKENS = Counter("switchboard_llm_tokens_total", "LLM tokens used.", ["model", "kind"])
LLM_TTFT = Histogram(
    "switchboard_llm_time_to_first_token_seconds",
    "Time from request to the first LLM token.",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
TURN_STAGE_SECONDS = Histogram(
    "switchboard_turn_stage_seconds",
    "Each turn's waterfall stages (worker/waterfall.py): seconds from the turn's origin (end of "
    "the user's speech, or their message received) to the end of the stage.",
    ["agent_id", "stage"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
)
"""One family with a `stage` label, not one per stage: every stage has the same unit and the
same meaning (the time the user had waited when it ended), so one set of buckets serves all
and `histogram_quantile(0.95, sum by (stage, le) (rate(..._bucket[5m])))` draws the p95
waterfall in one query; a new stage is a new label value, not a new metric to wire into
dashboards. What a stage itself took (an LLM request's first token, a tool call) has its own
metric already: `switchboard_llm_time_to_first_token_seconds`, `switchboard_tool_call_seconds`."""
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
RECORDS_DEAD_LETTERED = Counter(
    "switchboard_records_dead_lettered_total",
    "Records MongoDB cannot take, kept whole on disk and listed in dead_letters, by why.",
    ["kind"],
)

TOOL_CALLS = Counter(
    "switchboard_tool_calls_total",
    "Tool calls by the model, by tool name, kind (http, plugin, mcp, built-ins) and outcome "
    "(ok, error, timeout, refused: the egress policy stopped it before anything was sent).",
    ["tool", "kind", "outcome"],
)
TOOL_CALL_SECONDS = Histogram(
    "switchboard_tool_call_seconds",
    "Tool call duration, from the model's arguments to the result it reads (failures included).",
    ["tool", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


# -- ended job processes (main process) --------------------------------------------------

ARCHIVE = "archive"
"""Stands in for the pid in the name of the files that hold what ended processes counted."""

_MERGED_KINDS = {
    "counter": "sum",
    "histogram": "sum",  # files hold per-bucket counts; the collector makes them cumulative
    "summary": "sum",
    "gauge_sum": "sum",
    "gauge_max": "max",
    "gauge_min": "min",
    "gauge_mostrecent": "mostrecent",
}
"""What an ended process's file adds to the archive. `gauge_all` files are left alone: that mode
is one series per pid by definition (neither our metrics nor livekit's job-process ones use it)."""

_FILES = threading.Lock()
"""Held while files are merged and while a scrape reads them: a scrape that saw an ended
process's file and then the archive it went into would count it twice, or fail on the file
gone (prometheus_client tolerates that for live gauges only)."""


class _ScrapeUnderLock(multiprocess.MultiProcessCollector):
    def collect(self):
        with _FILES:
            return list(super().collect())


def serialize_scrapes_with_merges() -> None:
    """livekit's /metrics handler builds `multiprocess.MultiProcessCollector` per scrape, in
    an executor thread of the main process; from now on it takes `_FILES` while it reads."""
    multiprocess.MultiProcessCollector = _ScrapeUnderLock  # type: ignore[misc]  # patched on purpose


def forget_process(pid: int, directory: str | os.PathLike[str] | None = None) -> None:
    """Bookkeeping for a job process that has exited (never call it for a live one).

    Its live gauges go (`mark_process_dead`), so e.g. `switchboard_active_sessions` no longer
    counts a process that died mid-session. What it counted is added to the archive file of
    each kind (written beside it, then renamed over the old one) and its own file removed."""
    path = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    with _FILES:
        multiprocess.mark_process_dead(pid, str(path))
        for filename in glob.glob(os.path.join(glob.escape(str(path)), f"*_{pid}.db")):
            kind = Path(filename).name.removesuffix(f"_{pid}.db")
            how = _MERGED_KINDS.get(kind)
            if how is not None:
                _fold_into_archive(Path(filename), Path(path) / f"{kind}_{ARCHIVE}.db", how)


def _fold_into_archive(ended: Path, archive: Path, how: str) -> None:
    merged: dict[str, tuple[float, float]] = {}
    if archive.exists():
        merged = {
            key: (value, ts)
            for key, value, ts, _ in MmapedDict.read_all_values_from_file(str(archive))
        }
    for key, value, ts, _ in MmapedDict.read_all_values_from_file(str(ended)):
        if key not in merged:
            merged[key] = (value, ts)
            continue
        old, old_ts = merged[key]
        if how == "sum":
            merged[key] = (old + value, 0.0)
        elif how == "max":
            merged[key] = (max(old, value), 0.0)
        elif how == "min":
            merged[key] = (min(old, value), 0.0)
        elif ts > old_ts:  # mostrecent
            merged[key] = (value, ts)
    partial = archive.with_name(archive.name + ".partial")  # not *.db: no scrape reads it
    partial.unlink(missing_ok=True)
    target = MmapedDict(str(partial))
    try:
        for key, (value, ts) in merged.items():
            target.write_value(key, value, ts)
    finally:
        target.close()
    os.replace(partial, archive)
    ended.unlink()
