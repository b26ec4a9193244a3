"""Metric files of ended processes: folded away, with every count kept (prometheus_client's
multiprocess mode, real processes writing real files)."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker import metrics

# What one job process does to our metrics in a session.
ONE_SESSION = """
from worker import metrics
metrics.SESSIONS_STARTED.labels("sales-agent-v1", "purpose").inc()
metrics.ACTIVE_SESSIONS.labels("sales-agent-v1", "purpose").inc()
metrics.LLM_TTFT.labels("m").observe(0.3)
metrics.RECORDS_BUFFERED.set(2)
"""


def scrape(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    metrics.multiprocess.MultiProcessCollector(registry, path=str(directory))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }


def pids_in(directory: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("*.db")}


def test_files_of_ended_processes_are_folded_into_archives_and_counts_are_kept(
    tmp_path: Path,
) -> None:
    for _ in range(3):
        before = pids_in(tmp_path)
        env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        subprocess.run([sys.executable, "-c", ONE_SESSION], env=env, check=True)
        (pid,) = pids_in(tmp_path) - before - {metrics.ARCHIVE}
        metrics.forget_process(int(pid), tmp_path)

    assert pids_in(tmp_path) == {metrics.ARCHIVE}
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
    samples = scrape(tmp_path)
    labels = (("agent_id", "sales-agent-v1"), ("strategy", "purpose"))
    assert samples[("switchboard_sessions_started_total", labels)] == 3
    assert samples[("switchboard_llm_time_to_first_token_seconds_count", (("model", "m"),))] == 3
    bucket = (("le", "0.5"), ("model", "m"))
    assert samples[("switchboard_llm_time_to_first_token_seconds_bucket", bucket)] == 3
    # the live gauges of processes that have ended count for nothing (one died mid-session)
    assert ("switchboard_active_sessions", labels) not in samples
    assert ("switchboard_records_buffered", ()) not in samples


def test_forgetting_a_process_without_files_changes_nothing(tmp_path: Path) -> None:
    metrics.forget_process(999_999_999, tmp_path)
    assert list(tmp_path.iterdir()) == []
