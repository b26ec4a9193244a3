"""`python -m worker start|dev`: the Switchboard worker (livekit-agents CLI)."""

import asyncio
import os
import sys
from pathlib import Path

from worker.settings import get_worker_settings


def _refuse_unsafe_settings() -> None:
    """Before anything starts: the dev LiveKit keys need SWITCHBOARD_DEV_MODE=true."""
    from agent_configs.settings import UnsafeSettings

    try:
        get_worker_settings().check_safe_for_production()
    except UnsafeSettings as exc:
        sys.exit(f"error: {exc}")


def _prepare_metrics_dir() -> None:
    """prometheus_client picks multiprocess mode at import: the directory must exist first."""
    directory = Path(
        os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", str(get_worker_settings().prometheus_multiproc_dir)
        )
    )
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # samples of processes from an earlier run
        stale.unlink()


def _ensure_indexes_once() -> None:
    """Indexes of the session records, once per worker start rather than in every job.
    A database that is down now is not fatal: records are buffered, indexes come next start."""
    from worker.records import ensure_record_indexes_at

    settings = get_worker_settings()
    if settings.mongo_uri:
        asyncio.run(
            ensure_record_indexes_at(
                settings.mongo_uri, settings.mongo_db, settings.mongo_timeout_ms
            )
        )


if __name__ == "__main__":
    _refuse_unsafe_settings()
    _prepare_metrics_dir()
    _ensure_indexes_once()
    from livekit.agents import cli

    from worker.server import create_server

    cli.run_app(create_server())
